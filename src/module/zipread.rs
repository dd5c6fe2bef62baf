//! A small zip reader that sees an archive exactly as Go's `archive/zip` does: every central directory record, raw name bytes, Store and Deflate.
//!
//! The `zip` crate is not used for reading module zips because it files entries in a map by
//! name (silently merging duplicates that Go rejects), rewrites names from Info-ZIP Unicode
//! Path fields and decodes non-UTF-8 names as CP437, none of which the go command does. The
//! `h1:` hash and the validity of a module zip are defined by what Go sees.

use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};

use flate2::{Decompress, FlushDecompress, Status};

use super::zipcheck::ZipError;

const LOCAL_HEADER_SIG: u32 = 0x0403_4b50;
const CENTRAL_HEADER_SIG: u32 = 0x0201_4b50;
const END_SIG: [u8; 4] = [b'P', b'K', 5, 6];
const END64_LOCATOR_SIG: u32 = 0x0706_4b50;
const END64_SIG: u32 = 0x0606_4b50;
const DATA_DESCRIPTOR_SIG: u32 = 0x0807_4b50;
const LOCAL_HEADER_LEN: usize = 30;
const CENTRAL_HEADER_LEN: usize = 46;
const END_LEN: usize = 22;
const END64_LOCATOR_LEN: usize = 20;
const END64_LEN: usize = 56;
const ZIP64_EXTRA_ID: u16 = 0x0001;
const FLAG_DATA_DESCRIPTOR: u16 = 0x8;
const METHOD_STORE: u16 = 0;
const METHOD_DEFLATE: u16 = 8;

/// Output is produced in pieces this big, so an entry lying about its size is caught within
/// one piece of the lie.
const OUT_CHUNK: usize = 32 * 1024;
const IN_CHUNK: usize = 64 * 1024;

/// One central directory record, as Go's `zip.File` holds it.
#[derive(Debug)]
pub(crate) struct Entry {
    /// The name bytes exactly as stored.
    pub(crate) name: Vec<u8>,
    flags: u16,
    method: u16,
    crc32: u32,
    compressed_size: u64,
    /// The size the central directory declares; reading enforces it.
    pub(crate) uncompressed_size: u64,
    /// Where the local header starts, archive base offset included (Go's `headerOffset`).
    header_offset: i64,
}

impl Entry {
    /// Go treats a name ending in `/` as a directory whatever its other attributes.
    pub(crate) fn is_dir(&self) -> bool {
        self.name.ends_with(b"/")
    }

    fn display_name(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

/// An opened archive, for reading entries found by [`Archive::open`].
pub(crate) struct Archive<R> {
    reader: R,
    size: u64,
}

fn malformed(reason: impl Into<String>) -> ZipError {
    ZipError::Malformed {
        reason: reason.into(),
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

/// The end-of-central-directory facts Go's reader uses.
struct DirectoryEnd {
    records: u64,
    size: u64,
    offset: u64,
}

impl<R: Read + Seek> Archive<R> {
    /// Reads the central directory of an archive of `size` bytes: its records in stored
    /// order, duplicates included.
    pub(crate) fn open(reader: R, size: u64) -> Result<(Archive<R>, Vec<Entry>), ZipError> {
        let mut archive = Archive { reader, size };
        let (end, base) = archive.directory_end()?;
        let entries = archive.read_directory(&end, base)?;
        Ok((archive, entries))
    }

    /// Reads into `buf` from `offset` until it is full or the file ends; returns the count.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.seek(SeekFrom::Start(offset))?;
        let mut filled = 0;
        while filled < buf.len() {
            match self.reader.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(filled)
    }

    fn read_exact_at(&mut self, offset: u64, buf: &mut [u8], what: &str) -> Result<(), ZipError> {
        if self.read_at(offset, buf)? < buf.len() {
            return Err(malformed(format!(
                "{what} extends past the end of the file"
            )));
        }
        Ok(())
    }

    /// Finds the end record (and its zip64 form) and the archive's base offset, as
    /// `readDirectoryEnd` does: the last signature in the final 1 KiB, else in the final
    /// 65 KiB.
    fn directory_end(&mut self) -> Result<(DirectoryEnd, i64), ZipError> {
        let mut found = None;
        for (round, window) in [1024u64, 65 * 1024].into_iter().enumerate() {
            let window = window.min(self.size);
            let start = self.size - window;
            let mut buf = vec![0u8; usize::try_from(window).map_err(|_| malformed("too large"))?];
            let got = self.read_at(start, &mut buf)?;
            buf.truncate(got);
            if let Some(p) = find_end_signature(&buf) {
                found = Some((buf.split_off(p), start + p as u64));
                break;
            }
            if round == 1 || window == self.size {
                break;
            }
        }
        let (rec, mut end_offset) =
            found.ok_or_else(|| malformed("no end of central directory record"))?;
        let mut end = DirectoryEnd {
            records: u64::from(u16_at(&rec, 10)),
            size: u64::from(u32_at(&rec, 12)),
            offset: u64::from(u32_at(&rec, 16)),
        };
        if end.records == 0xffff || end.size == 0xffff_ffff || end.offset == 0xffff_ffff {
            if let Some(p) = self.find_directory64_end(end_offset)? {
                end_offset = p;
                let mut b = [0u8; END64_LEN];
                self.read_exact_at(p, &mut b, "zip64 end record")?;
                if u32_at(&b, 0) != END64_SIG {
                    return Err(malformed("bad zip64 end record signature"));
                }
                end.records = u64_at(&b, 32);
                end.size = u64_at(&b, 40);
                end.offset = u64_at(&b, 48);
            }
        }
        let as_i64 = |x: u64| i64::try_from(x).map_err(|_| malformed("directory out of range"));
        let (dir_size, dir_offset) = (as_i64(end.size)?, as_i64(end.offset)?);
        let end_at = as_i64(end_offset)?;
        // Data prepended to the archive (self-extractors) shifts every offset; Go infers the
        // shift from where the directory must end.
        let mut base = end_at
            .checked_sub(dir_size)
            .and_then(|x| x.checked_sub(dir_offset))
            .ok_or_else(|| malformed("directory out of range"))?;
        let dir_start = end_at - dir_size;
        if dir_start < 0 || dir_start as u64 >= self.size {
            return Err(malformed("directory out of range"));
        }
        if base > 0 && self.header_parses_at(end.offset)? {
            base = 0;
        }
        Ok((end, base))
    }

    /// `findDirectory64End`: the zip64 locator just before the end record, if there is one.
    fn find_directory64_end(&mut self, end_offset: u64) -> Result<Option<u64>, ZipError> {
        let Some(loc) = end_offset.checked_sub(END64_LOCATOR_LEN as u64) else {
            return Ok(None);
        };
        let mut b = [0u8; END64_LOCATOR_LEN];
        self.read_exact_at(loc, &mut b, "zip64 locator")?;
        if u32_at(&b, 0) != END64_LOCATOR_SIG || u32_at(&b, 4) != 0 || u32_at(&b, 16) != 1 {
            return Ok(None);
        }
        let p = u64_at(&b, 8);
        // Go reads the offset as a signed number and ignores negative ones.
        Ok(i64::try_from(p).is_ok().then_some(p))
    }

    /// Whether a whole central directory record can be read at `offset`.
    fn header_parses_at(&mut self, offset: u64) -> Result<bool, ZipError> {
        if offset >= self.size {
            return Ok(false);
        }
        self.reader.seek(SeekFrom::Start(offset))?;
        let limit = self.size - offset;
        let mut r = BufReader::new((&mut self.reader).take(limit));
        Ok(read_central_header(&mut r)?.is_some())
    }

    /// Reads records from the directory start until one does not parse, then checks the
    /// count against the end record modulo 2^16, as Go does.
    fn read_directory(&mut self, end: &DirectoryEnd, base: i64) -> Result<Vec<Entry>, ZipError> {
        let start = base
            .checked_add(end.offset as i64)
            .filter(|&s| s >= 0)
            .ok_or_else(|| malformed("directory out of range"))?;
        let start = start as u64;
        self.reader.seek(SeekFrom::Start(start))?;
        let limit = self.size.saturating_sub(start);
        let mut r = BufReader::new((&mut self.reader).take(limit));
        let mut entries = Vec::new();
        while let Some(mut entry) = read_central_header(&mut r)? {
            entry.header_offset = entry
                .header_offset
                .checked_add(base)
                .ok_or_else(|| malformed("entry offset out of range"))?;
            entries.push(entry);
        }
        if entries.len() as u16 != end.records as u16 {
            return Err(malformed(format!(
                "central directory has {} records, end record says {}",
                entries.len(),
                end.records
            )));
        }
        Ok(entries)
    }

    /// Finds where an entry's data starts by reading its local header (`findBodyOffset`).
    fn body_offset(&mut self, e: &Entry) -> Result<u64, ZipError> {
        let bad_offset = || ZipError::BadEntry {
            name: e.display_name(),
            reason: "local header out of range".into(),
        };
        let at = u64::try_from(e.header_offset).map_err(|_| bad_offset())?;
        let mut b = [0u8; LOCAL_HEADER_LEN];
        if self.read_at(at, &mut b)? < LOCAL_HEADER_LEN {
            return Err(bad_offset());
        }
        if u32_at(&b, 0) != LOCAL_HEADER_SIG {
            return Err(ZipError::BadEntry {
                name: e.display_name(),
                reason: "bad local header signature".into(),
            });
        }
        let skip = LOCAL_HEADER_LEN as u64 + u64::from(u16_at(&b, 26)) + u64::from(u16_at(&b, 28));
        at.checked_add(skip).ok_or_else(bad_offset)
    }

    /// Checks that a directory entry could be opened and holds no data, as Go's `Open` and
    /// its directory reader require.
    pub(crate) fn check_dir(&mut self, e: &Entry) -> Result<(), ZipError> {
        self.body_offset(e)?;
        if e.uncompressed_size != 0 {
            return Err(ZipError::BadEntry {
                name: e.display_name(),
                reason: "directory entry has content".into(),
            });
        }
        Ok(())
    }

    /// Streams a file entry's content to `sink` and verifies it as Go's `checksumReader`
    /// does: never more than the declared size (checked before `sink` sees the excess),
    /// exactly the declared size at the end, and a matching CRC-32.
    pub(crate) fn read_file(
        &mut self,
        e: &Entry,
        mut sink: impl FnMut(&[u8]) -> Result<(), ZipError>,
    ) -> Result<u64, ZipError> {
        let entry_err = |reason: &str| ZipError::BadEntry {
            name: e.display_name(),
            reason: reason.to_owned(),
        };
        let body = self.body_offset(e)?;
        let mut crc = flate2::Crc::new();
        let mut nread: u64 = 0;
        let mut deliver = |chunk: &[u8]| -> Result<(), ZipError> {
            nread += chunk.len() as u64;
            if nread > e.uncompressed_size {
                return Err(entry_err("content larger than declared size"));
            }
            crc.update(chunk);
            sink(chunk)
        };
        match e.method {
            METHOD_STORE => self.copy_stored(body, e.compressed_size, &mut deliver)?,
            METHOD_DEFLATE => {
                if !self.inflate(body, e.compressed_size, &mut deliver)? {
                    return Err(entry_err("compressed data is truncated"));
                }
            }
            m => return Err(entry_err(&format!("unsupported compression method {m}"))),
        }
        if nread != e.uncompressed_size {
            return Err(entry_err("content shorter than declared size"));
        }
        if e.flags & FLAG_DATA_DESCRIPTOR != 0 {
            let at = body
                .checked_add(e.compressed_size)
                .ok_or_else(|| entry_err("data descriptor out of range"))?;
            let mut b = [0u8; 16];
            let got = self.read_at(at, &mut b)?;
            // The descriptor's signature is optional; its CRC follows it or starts it.
            let crc_at = if got >= 4 && u32_at(&b, 0) == DATA_DESCRIPTOR_SIG {
                4
            } else {
                0
            };
            if got < crc_at + 12 {
                return Err(entry_err("data descriptor is truncated"));
            }
            if u32_at(&b, crc_at) != e.crc32 {
                return Err(entry_err("checksum error"));
            }
            if crc.sum() != e.crc32 {
                return Err(entry_err("checksum error"));
            }
        } else if e.crc32 != 0 && crc.sum() != e.crc32 {
            return Err(entry_err("checksum error"));
        }
        Ok(nread)
    }

    /// Stored data: the next `len` bytes, or fewer if the file ends first.
    fn copy_stored(
        &mut self,
        mut at: u64,
        len: u64,
        deliver: &mut impl FnMut(&[u8]) -> Result<(), ZipError>,
    ) -> Result<(), ZipError> {
        let mut buf = vec![0u8; OUT_CHUNK];
        let mut remaining = len;
        while remaining > 0 {
            let want = remaining.min(OUT_CHUNK as u64) as usize;
            let got = self.read_at(at, &mut buf[..want])?;
            if got == 0 {
                break;
            }
            deliver(&buf[..got])?;
            at += got as u64;
            remaining -= got as u64;
        }
        Ok(())
    }

    /// Raw deflate from at most `len` bytes at `at`. Returns whether the stream ended
    /// properly; trailing compressed bytes after the end are ignored, as in Go.
    fn inflate(
        &mut self,
        mut at: u64,
        len: u64,
        deliver: &mut impl FnMut(&[u8]) -> Result<(), ZipError>,
    ) -> Result<bool, ZipError> {
        let mut dec = Decompress::new(false);
        let mut input = vec![0u8; IN_CHUNK];
        let mut output = vec![0u8; OUT_CHUNK];
        let (mut start, mut end) = (0usize, 0usize);
        let mut remaining = len;
        let mut input_done = false;
        loop {
            if start == end && !input_done {
                let want = remaining.min(IN_CHUNK as u64) as usize;
                let got = if want == 0 {
                    0
                } else {
                    self.read_at(at, &mut input[..want])?
                };
                at += got as u64;
                remaining -= got as u64;
                (start, end) = (0, got);
                input_done = got < want || remaining == 0;
            }
            let (in_before, out_before) = (dec.total_in(), dec.total_out());
            let status = dec
                .decompress(&input[start..end], &mut output, FlushDecompress::None)
                .map_err(|_| malformed("corrupt deflate data"))?;
            let consumed = (dec.total_in() - in_before) as usize;
            let produced = (dec.total_out() - out_before) as usize;
            start += consumed;
            if produced > 0 {
                deliver(&output[..produced])?;
            }
            if status == Status::StreamEnd {
                return Ok(true);
            }
            if consumed == 0 && produced == 0 {
                if start < end {
                    return Err(malformed("corrupt deflate data"));
                }
                if input_done {
                    return Ok(false);
                }
            }
        }
    }
}

/// The last end-record signature in `b` (`findSignatureInBlock`). Go stops at the last
/// signature even when its comment length does not fit, rather than looking further back.
fn find_end_signature(b: &[u8]) -> Option<usize> {
    let last = b.len().checked_sub(END_LEN)?;
    let i = (0..=last).rev().find(|&i| b[i..i + 4] == END_SIG)?;
    let comment = usize::from(u16_at(b, i + END_LEN - 2));
    (i + END_LEN + comment <= b.len()).then_some(i)
}

/// One central directory record (`readDirectoryHeader`); `None` where Go's loop stops: a
/// short read, another signature, or a zip64 field too short for what it must hold.
fn read_central_header(r: &mut impl BufRead) -> Result<Option<Entry>, ZipError> {
    let mut h = [0u8; CENTRAL_HEADER_LEN];
    if !read_full(r, &mut h)? || u32_at(&h, 0) != CENTRAL_HEADER_SIG {
        return Ok(None);
    }
    let name_len = usize::from(u16_at(&h, 28));
    let extra_len = usize::from(u16_at(&h, 30));
    let comment_len = usize::from(u16_at(&h, 32));
    let mut rest = vec![0u8; name_len + extra_len + comment_len];
    if !read_full(r, &mut rest)? {
        return Ok(None);
    }
    let compressed32 = u32_at(&h, 20);
    let uncompressed32 = u32_at(&h, 24);
    let offset32 = u32_at(&h, 42);
    let mut entry = Entry {
        name: rest[..name_len].to_vec(),
        flags: u16_at(&h, 8),
        method: u16_at(&h, 10),
        crc32: u32_at(&h, 16),
        compressed_size: u64::from(compressed32),
        uncompressed_size: u64::from(uncompressed32),
        header_offset: i64::from(offset32),
    };
    let mut extra = &rest[name_len..name_len + extra_len];
    while extra.len() >= 4 {
        let tag = u16_at(extra, 0);
        let size = usize::from(u16_at(extra, 2));
        extra = &extra[4..];
        if extra.len() < size {
            break;
        }
        let (mut field, tail) = extra.split_at(size);
        extra = tail;
        if tag != ZIP64_EXTRA_ID {
            continue;
        }
        // Each 64-bit value is present only when its 32-bit slot is saturated.
        let next = |field: &mut &[u8]| -> Option<u64> {
            let v = u64_at(field.get(..8)?, 0);
            *field = &field[8..];
            Some(v)
        };
        if uncompressed32 == u32::MAX {
            let Some(v) = next(&mut field) else {
                return Ok(None);
            };
            entry.uncompressed_size = v;
        }
        if compressed32 == u32::MAX {
            let Some(v) = next(&mut field) else {
                return Ok(None);
            };
            entry.compressed_size = v;
        }
        if offset32 == u32::MAX {
            let Some(v) = next(&mut field) else {
                return Ok(None);
            };
            // Go converts with wrap-around; a negative offset fails when the entry is read.
            entry.header_offset = v as i64;
        }
    }
    Ok(Some(entry))
}

/// Fills `buf` completely; `false` if the input ends first.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<bool, ZipError> {
    match r.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e.into()),
    }
}
