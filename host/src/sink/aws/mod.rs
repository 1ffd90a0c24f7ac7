//! Talking to AWS: request signing (SigV4) and where the keys come from.
//!
//! Amazon OpenSearch Service (service name `es`) and OpenSearch Serverless
//! (`aoss`) accept only requests signed with AWS Signature Version 4, made
//! with credentials found the way every AWS tool finds them: environment
//! variables, an IAM role for the pod's service account (IRSA), EKS Pod
//! Identity or ECS container credentials, the shared `~/.aws` files, or the
//! EC2 instance role.
//!
//! We do both jobs here instead of using the AWS SDK crates. Those crates
//! (`aws-config`, `aws-sigv4`, `aws-smithy-*`, `aws-sdk-sts`, …) add about a
//! hundred dependencies and minutes of compile time on a small machine, for
//! two jobs that fit in a few hundred lines each: an HMAC chain over a
//! canonical form of the request ([`sigv4`]) and a handful of small HTTP calls
//! with short, documented response formats ([`credentials`]). Only what kwex
//! needs is implemented: header signing (no presigned URLs, no chunked
//! payloads, no SigV4a), and static or temporary credentials (no SSO, no
//! `credential_process`, no `role_arn` chains in profiles).
//!
//! The signer is checked against AWS's published SigV4 test suite, the
//! credential sources against local servers that answer in the real formats.

pub mod credentials;
pub mod sigv4;

pub use credentials::{Credentials, CredentialsError, CredentialsProvider, Env};
pub use sigv4::{SignError, SignableRequest, SigningSettings, sign, sign_request};
