//! The index template (and retention policy) kwex installs with `--install-template`.
//!
//! Field types follow the Document (`docs/document.md`): keywords for what
//! operators filter and aggregate on, text for the message, dates for the
//! timestamps. Labels and annotations, whose keys hold dots and slashes,
//! are `flattened` on Elasticsearch and `flat_object` on OpenSearch ≥ 2.7, so
//! `app.kubernetes.io/name` can never conflict with `app`; older clusters get
//! plain objects, and `--dedot` rewrites the dots in the keys.
//!
//! Retention (`--retention-days`) is an ISM policy on OpenSearch and an ILM
//! policy on Elasticsearch, attached to the indices of the template.

use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Client, Response};
use super::{ClusterInfo, Flavor};

/// What to install.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Template (and policy) name.
    pub name: String,
    /// Index patterns it applies to, e.g. `kwex-events-*`.
    pub index_patterns: Vec<String>,
    /// Delete indices older than this many days; `None` keeps them.
    pub retention_days: Option<u32>,
    /// The template is for a data stream.
    pub data_stream: bool,
}

/// Installing failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The cluster answered with an error.
    #[error("{what}: HTTP {status}: {answer}")]
    Refused {
        /// What was being installed.
        what: String,
        /// Its status.
        status: u16,
        /// The start of the answer.
        answer: String,
    },
    /// The cluster did not answer.
    #[error("{what}: {source}")]
    Transport {
        /// What was being installed.
        what: String,
        /// Why.
        #[source]
        source: super::client::TransportError,
    },
}

/// The field type for maps with arbitrary keys on this cluster, if it has one.
pub fn flat_type(info: &ClusterInfo) -> Option<&'static str> {
    match info.flavor {
        Flavor::Elasticsearch => Some("flattened"),
        Flavor::OpenSearch if info.major_minor() >= (2, 7) => Some("flat_object"),
        Flavor::OpenSearch => None,
    }
}

/// The composable index template body.
pub fn template_body(info: &ClusterInfo, settings: &Settings) -> Value {
    let keyword = json!({"type": "keyword", "ignore_above": 1024});
    let date = json!({"type": "date"});
    let object_ref = json!({"properties": {
        "kind": keyword, "namespace": keyword, "name": keyword, "uid": keyword,
        "apiVersion": keyword, "fieldPath": keyword
    }});
    let map_type = match flat_type(info) {
        Some(t) => json!({"type": t}),
        None => json!({"type": "object", "dynamic": true}),
    };
    let mut index_settings = json!({"number_of_shards": 1});
    if settings.retention_days.is_some() && info.flavor == Flavor::Elasticsearch {
        index_settings["lifecycle"] = json!({"name": settings.name});
    }
    let mut body = json!({
        "index_patterns": settings.index_patterns,
        "priority": 200,
        "_meta": {"managed_by": "kwex", "docs": "docs/document.md"},
        "template": {
            "settings": {"index": index_settings},
            "mappings": {
                "dynamic_templates": [
                    {"strings_as_keywords": {"match_mapping_type": "string", "mapping": keyword}}
                ],
                "properties": {
                    "@timestamp": date, "cluster": keyword, "type": keyword, "reason": keyword,
                    "message": {"type": "text"}, "action": keyword, "count": {"type": "long"},
                    "firstTimestamp": date, "lastTimestamp": date,
                    "involvedObject": object_ref, "related": object_ref,
                    "source": {"properties": {"component": keyword, "host": keyword}},
                    "reportingController": keyword, "reportingInstance": keyword,
                    "metadata": {"properties": {
                        "namespace": keyword, "name": keyword, "uid": keyword, "resourceVersion": keyword,
                        "creationTimestamp": date, "labels": map_type, "annotations": map_type
                    }},
                    "kwex": {"properties": {
                        "watchAction": keyword, "observedAt": date, "apiVersion": keyword,
                        "messageTruncatedFrom": {"type": "long"}, "invalidUtf8Replaced": {"type": "boolean"}
                    }}
                }
            }
        }
    });
    if settings.data_stream {
        body["data_stream"] = json!({});
    }
    body
}

/// The retention policy body (ISM for OpenSearch, ILM for Elasticsearch).
pub fn policy_body(info: &ClusterInfo, settings: &Settings, days: u32) -> Value {
    match info.flavor {
        Flavor::OpenSearch => json!({"policy": {
            "description": format!("kwex: delete Event indices after {days} days"),
            "default_state": "hot",
            "states": [
                {"name": "hot", "actions": [], "transitions": [
                    {"state_name": "delete", "conditions": {"min_index_age": format!("{days}d")}}
                ]},
                {"name": "delete", "actions": [{"delete": {}}], "transitions": []}
            ],
            "ism_template": [{"index_patterns": settings.index_patterns, "priority": 100}]
        }}),
        Flavor::Elasticsearch => json!({"policy": {
            "_meta": {"managed_by": "kwex"},
            "phases": {
                "hot": {"actions": {}},
                "delete": {"min_age": format!("{days}d"), "actions": {"delete": {}}}
            }
        }}),
    }
}

/// Installs (or updates) the template and, with a retention, the policy.
pub async fn install(
    client: &Client,
    info: &ClusterInfo,
    settings: &Settings,
) -> Result<(), Error> {
    if let Some(days) = settings.retention_days {
        let (path, what) = match info.flavor {
            Flavor::OpenSearch => (
                format!("/_plugins/_ism/policies/{}", settings.name),
                "ISM policy",
            ),
            Flavor::Elasticsearch => (format!("/_ilm/policy/{}", settings.name), "ILM policy"),
        };
        let body = policy_body(info, settings, days);
        let answer = put(client, &path, &body, what).await?;
        if answer.status == 409 && info.flavor == Flavor::OpenSearch {
            // An ISM policy is updated with the sequence number of the one it replaces.
            let current = send(client, Method::GET, &path, None, what).await?;
            let v: Value = serde_json::from_slice(&current.body).unwrap_or_default();
            let (seq, term) = (
                v["_seq_no"].as_i64().unwrap_or(0),
                v["_primary_term"].as_i64().unwrap_or(0),
            );
            let updated = put(
                client,
                &format!("{path}?if_seq_no={seq}&if_primary_term={term}"),
                &body,
                what,
            )
            .await?;
            check(updated, what)?;
        } else {
            check(answer, what)?;
        }
        tracing::info!(policy = %settings.name, days, kind = what, "Retention policy installed.");
    }
    let path = format!("/_index_template/{}", settings.name);
    check(
        put(
            client,
            &path,
            &template_body(info, settings),
            "index template",
        )
        .await?,
        "index template",
    )?;
    tracing::info!(template = %settings.name, patterns = ?settings.index_patterns, flat_type = ?flat_type(info), "Index template installed.");
    Ok(())
}

async fn put(client: &Client, path: &str, body: &Value, what: &str) -> Result<Response, Error> {
    send(client, Method::PUT, path, Some(body), what).await
}

async fn send(
    client: &Client,
    method: Method,
    path: &str,
    body: Option<&Value>,
    what: &str,
) -> Result<Response, Error> {
    let bytes = body.map(|b| serde_json::to_vec(b).unwrap_or_default());
    client
        .request(method, path, bytes, "application/json")
        .await
        .map_err(|source| Error::Transport {
            what: what.to_owned(),
            source,
        })
}

fn check(response: Response, what: &str) -> Result<(), Error> {
    if (200..300).contains(&response.status) {
        Ok(())
    } else {
        Err(Error::Refused {
            what: what.to_owned(),
            status: response.status,
            answer: String::from_utf8_lossy(&response.body[..response.body.len().min(500)])
                .into_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(flavor: Flavor, version: &str) -> ClusterInfo {
        ClusterInfo {
            flavor,
            version: version.into(),
        }
    }

    fn settings() -> Settings {
        Settings {
            name: "kwex-events".into(),
            index_patterns: vec!["kwex-events-*".into()],
            retention_days: Some(30),
            data_stream: false,
        }
    }

    #[test]
    fn labels_are_flattened_on_elasticsearch_and_flat_objects_on_recent_opensearch() {
        let es = template_body(&info(Flavor::Elasticsearch, "8.15.3"), &settings());
        assert_eq!(
            es["template"]["mappings"]["properties"]["metadata"]["properties"]["labels"]["type"],
            "flattened"
        );
        let os = template_body(&info(Flavor::OpenSearch, "3.8.0"), &settings());
        assert_eq!(
            os["template"]["mappings"]["properties"]["metadata"]["properties"]["labels"]["type"],
            "flat_object"
        );
        let old = template_body(&info(Flavor::OpenSearch, "2.6.0"), &settings());
        assert_eq!(
            old["template"]["mappings"]["properties"]["metadata"]["properties"]["labels"]["type"],
            "object"
        );
    }

    #[test]
    fn retention_is_ilm_on_elasticsearch_and_ism_on_opensearch() {
        let es = info(Flavor::Elasticsearch, "8.15.3");
        assert_eq!(
            template_body(&es, &settings())["template"]["settings"]["index"]["lifecycle"]["name"],
            "kwex-events"
        );
        assert_eq!(
            policy_body(&es, &settings(), 30)["policy"]["phases"]["delete"]["min_age"],
            "30d"
        );
        let os = info(Flavor::OpenSearch, "3.8.0");
        let ism = policy_body(&os, &settings(), 7);
        assert_eq!(
            ism["policy"]["states"][0]["transitions"][0]["conditions"]["min_index_age"],
            "7d"
        );
        assert_eq!(
            ism["policy"]["ism_template"][0]["index_patterns"][0],
            "kwex-events-*"
        );
    }

    #[test]
    fn data_streams_are_declared() {
        let s = Settings {
            data_stream: true,
            ..settings()
        };
        assert!(
            template_body(&info(Flavor::Elasticsearch, "8.15.3"), &s)["data_stream"].is_object()
        );
    }
}
