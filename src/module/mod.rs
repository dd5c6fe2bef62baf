//! The Go module vocabulary: module paths, versions, the GOPROXY URL grammar, zip checks and `h1:` hashes.
