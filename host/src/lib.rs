//! kwex: a Kubernetes Event exporter.
//!
//! Kubernetes keeps Events for one hour. kwex watches them, turns each into a
//! [`document::Document`], passes it through a chain of user-supplied
//! WebAssembly filters, and ships it in batches to OpenSearch or
//! Elasticsearch, so that Events stay searchable for as long as the operator
//! wants.
//!
//! The crate is laid out as the pipeline is:
//!
//! - [`source`]: where Events come from (a file or stdin for `kwex replay`).
//! - [`document`]: the Document schema, and Event → Document normalization.
//! - [`sink`]: where Documents go (stdout; the `_bulk` body encoding).
//! - [`pipeline`]: joins the stages with bounded channels and one
//!   cancellation token; the only module that knows all the others.
//! - [`config`]: flags, validated into typed settings before anything starts.
//! - [`telemetry`]: metrics and logs.
//!
//! `docs/` in the repository explains the decisions behind each part.

pub mod backoff;
pub mod config;
pub mod document;
pub mod error;
pub mod filter;
pub mod pipeline;
pub mod sink;
pub mod source;
pub mod spool;
pub mod telemetry;
