//! `kwex-guest`: write kwex filters in Rust.
//!
//! A kwex filter is a WebAssembly module that receives one Document (the JSON
//! shape described in `docs/document.md`) and answers keep, replace, drop,
//! route, or an error. This crate will carry the Rust side of that contract:
//! the WIT world for components, the core-module ABI for plain modules, and a
//! macro that exports a plain Rust function under either.
//!
//! It is empty until the filter runtime lands; the contract is specified in
//! the repository's `DESIGN` notes and will be written up in `guest-sdk/ABI.md`.
#![no_std]
