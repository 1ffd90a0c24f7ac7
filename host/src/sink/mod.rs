//! Where Documents go.
//!
//! A sink takes chunks of [`Record`](crate::document::Record)s from the last
//! channel of the pipeline and ends when that channel closes, after writing
//! everything it received. [`encode`] builds `_bulk` request bodies, shared by
//! the stdout sink's `--format bulk` and the search-cluster sink.

pub mod encode;
pub mod stdout;
