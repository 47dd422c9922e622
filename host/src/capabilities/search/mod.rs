//! The `search` capability: full-text and filtered search over indexes the
//! host keeps, on Tantivy (embedded) or Elasticsearch (distributed).
//!
//! - [`SearchBackend`] is the engine, behind one small trait: the two
//!   implementations ([`tantivy`], [`elasticsearch`]) share the query
//!   model (the WIT types), the facet request and response shape
//!   (Elasticsearch's aggregation JSON, which Tantivy also speaks) and the
//!   cursor format, so a test suite runs unchanged against either.
//! - Indexing is derived from SQL through an outbox ([`outbox`]): a
//!   component's `index`/`remove` are rows written in the component's own
//!   transaction; a drainer applies them in order, at least once.
//!   Documents carry versions and deletions are versioned tombstones, so
//!   applying twice, or late, never brings back old data.
//! - A rebuild ([`rebuild`]) loads a new generation of an index from the
//!   component's `searchable.documents` while live changes go to both, then
//!   swaps generations atomically (an alias swap on Elasticsearch).

pub mod elasticsearch;
mod host;
pub mod outbox;
pub mod rebuild;
pub mod tantivy;

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
pub use host::{SearchCtxView, SearchView, add_to_linker};
use serde_json::{Value as Json, json};
use tokio::sync::Notify;

pub use crate::bindings::search::{
    Bucket, Direction, Document, Facet, FacetRequest, FieldKind, FieldSchema, FieldValue, Filter, Hit, IndexSchema,
    Query, RangeBucket, Results, SearchError, Sort,
};

/// One change to apply to an index.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum IndexOp {
    Upsert(Document),
    /// A tombstone at `version`: the document is gone, and stays gone for
    /// any older change applied after this one.
    Remove {
        id: String,
        version: i64,
    },
}

impl IndexOp {
    pub fn id(&self) -> &str {
        match self {
            IndexOp::Upsert(d) => &d.id,
            IndexOp::Remove { id, .. } => id,
        }
    }

    pub fn version(&self) -> i64 {
        match self {
            IndexOp::Upsert(d) => d.version,
            IndexOp::Remove { version, .. } => *version,
        }
    }
}

/// Field names the engines use for their own bookkeeping; component
/// schemas may not use the `doc_` prefix.
pub mod reserved {
    pub const ID: &str = "doc_id";
    pub const VERSION: &str = "doc_version";
    pub const DELETED: &str = "doc_deleted";
    pub const TIEBREAK: &str = "doc_tiebreak";
    pub const PREFIX: &str = "doc_";
}

/// Bounds on queries, whatever the engine.
pub mod limits {
    /// Free-text tokens considered; the rest are ignored.
    pub const MAX_TOKENS: usize = 10;
    /// Largest page.
    pub const MAX_PAGE: u32 = 100;
    pub const MAX_SUGGESTIONS: u32 = 20;
    pub const MAX_FILTER_VALUES: usize = 100;
    pub const MAX_TERMS_FACET: u32 = 100;
}

#[async_trait::async_trait]
pub trait SearchBackend: Send + Sync + 'static {
    fn engine(&self) -> &'static str;
    /// Creates the index if it is missing. True when the index is new or
    /// its schema changed: it must then be rebuilt from the source.
    async fn ensure_index(&self, schema: &IndexSchema) -> Result<bool, SearchError>;
    /// Applies changes in order (to the next generation too, during a
    /// rebuild). Idempotent: a change older than what is indexed is skipped.
    async fn apply(&self, index: &str, ops: &[IndexOp]) -> Result<(), SearchError>;
    async fn search(&self, query: &Query) -> Result<Results, SearchError>;
    async fn suggest(&self, index: &str, field: &str, prefix: &str, limit: u32) -> Result<Vec<String>, SearchError>;
    /// Starts a new, empty generation of the index.
    async fn begin_rebuild(&self, schema: &IndexSchema) -> Result<(), SearchError>;
    /// Loads documents into the new generation only.
    async fn load_rebuild(&self, index: &str, ops: &[IndexOp]) -> Result<(), SearchError>;
    /// Makes the new generation the current one and drops the old.
    async fn finish_rebuild(&self, index: &str) -> Result<(), SearchError>;
}

/// The capability's shared state for one slot: the engine, and a bell the
/// drainer listens to.
pub struct SearchService {
    pub backend: Arc<dyn SearchBackend>,
    pub(crate) queued: Arc<Notify>,
    /// Rebuilds of this service's indexes run one at a time.
    pub(crate) rebuilding: tokio::sync::Mutex<()>,
}

impl SearchService {
    pub fn new(backend: Arc<dyn SearchBackend>) -> Arc<Self> {
        Arc::new(Self { backend, queued: Arc::new(Notify::new()), rebuilding: tokio::sync::Mutex::new(()) })
    }
}

pub fn unavailable(e: impl std::fmt::Display) -> SearchError {
    SearchError::Unavailable(e.to_string())
}

/// Checks a schema before any engine sees it.
pub fn validate_schema(schema: &IndexSchema) -> Result<(), SearchError> {
    let ok_name = |n: &str| {
        !n.is_empty() && n.len() <= 64 && n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    };
    if !ok_name(&schema.name) {
        return Err(SearchError::InvalidQuery(format!(
            "index name `{}` must be lower-case letters, digits and _",
            schema.name
        )));
    }
    for f in &schema.fields {
        if !ok_name(&f.name) || f.name.starts_with(reserved::PREFIX) {
            return Err(SearchError::InvalidQuery(format!("field name `{}` is not allowed", f.name)));
        }
    }
    Ok(())
}

/// Opaque cursors: `base64url(JSON {sort, values} + CRC32)`. The sort is
/// part of the cursor so one from another ordering is refused.
pub mod cursor {
    use super::*;

    pub fn encode(sort: &str, values: &Json) -> String {
        let mut bytes = serde_json::to_vec(&json!({ "s": sort, "v": values })).unwrap_or_default();
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_be_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    pub fn decode(sort: &str, cursor: &str) -> Result<Json, SearchError> {
        if cursor.len() > 1024 {
            return Err(SearchError::InvalidCursor);
        }
        let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| SearchError::InvalidCursor)?;
        if bytes.len() < 4 {
            return Err(SearchError::InvalidCursor);
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        if crc32fast::hash(body).to_be_bytes() != crc {
            return Err(SearchError::InvalidCursor);
        }
        let parsed: Json = serde_json::from_slice(body).map_err(|_| SearchError::InvalidCursor)?;
        if parsed["s"] != sort {
            return Err(SearchError::InvalidCursor);
        }
        Ok(parsed["v"].clone())
    }
}

/// A name for the ordering of a query, for cursors.
pub fn sort_descriptor(sort: &Sort) -> String {
    match sort {
        Sort::Relevance => "relevance".into(),
        Sort::Field((field, Direction::Ascending)) => format!("{field}:asc"),
        Sort::Field((field, Direction::Descending)) => format!("{field}:desc"),
    }
}

/// The aggregation request for the facets of a query, in Elasticsearch's
/// format (which Tantivy's aggregations accept too).
pub fn facet_aggregations(facets: &[FacetRequest]) -> Json {
    let mut aggs = serde_json::Map::new();
    for (i, facet) in facets.iter().enumerate() {
        let agg = match facet {
            FacetRequest::Terms((field, size)) => {
                json!({ "terms": { "field": field, "size": (*size).min(limits::MAX_TERMS_FACET) } })
            }
            FacetRequest::Ranges((field, buckets)) => {
                let ranges: Vec<Json> = buckets
                    .iter()
                    .map(|b| {
                        let mut r = serde_json::Map::new();
                        r.insert("key".into(), json!(b.key));
                        if let Some(min) = b.min {
                            r.insert("from".into(), json!(min as f64));
                        }
                        if let Some(max) = b.max {
                            r.insert("to".into(), json!(max as f64));
                        }
                        Json::Object(r)
                    })
                    .collect();
                json!({ "range": { "field": field, "ranges": ranges } })
            }
        };
        aggs.insert(format!("f{i}"), agg);
    }
    Json::Object(aggs)
}

/// Reads facets back from an aggregation response (either engine).
pub fn facets_from_aggregations(facets: &[FacetRequest], response: &Json) -> Vec<Facet> {
    facets
        .iter()
        .enumerate()
        .map(|(i, facet)| {
            let field = match facet {
                FacetRequest::Terms((f, _)) | FacetRequest::Ranges((f, _)) => f.clone(),
            };
            let raw = &response[format!("f{i}")]["buckets"];
            let mut buckets: Vec<Bucket> = match raw {
                Json::Array(items) => items.iter().filter_map(bucket).collect(),
                // Keyed responses: { key: { doc_count } }.
                Json::Object(map) => map
                    .iter()
                    .filter_map(|(k, v)| Some(Bucket { key: k.clone(), count: v["doc_count"].as_u64()? }))
                    .collect(),
                _ => Vec::new(),
            };
            if let FacetRequest::Ranges((_, requested)) = facet {
                // In the order the ranges were asked for.
                buckets = requested
                    .iter()
                    .map(|r| Bucket {
                        key: r.key.clone(),
                        count: buckets.iter().find(|b| b.key == r.key).map_or(0, |b| b.count),
                    })
                    .collect();
            }
            Facet { field, buckets }
        })
        .collect()
}

fn bucket(item: &Json) -> Option<Bucket> {
    let key = match &item["key"] {
        Json::String(s) => s.clone(),
        Json::Number(n) => n.to_string(),
        _ => return None,
    };
    Some(Bucket { key, count: item["doc_count"].as_u64()? })
}

/// How many edits a free-text token may be off by (Elasticsearch's
/// `AUTO`): none up to 2 characters, one up to 5, two beyond.
pub fn fuzziness(token: &str) -> u8 {
    match token.chars().count() {
        0..=2 => 0,
        3..=5 => 1,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_edits_and_other_sorts() {
        let c = cursor::encode("price:asc", &json!([1999, 42]));
        assert_eq!(cursor::decode("price:asc", &c).unwrap(), json!([1999, 42]));
        assert_eq!(cursor::decode("price:desc", &c), Err(SearchError::InvalidCursor));
        let mut edited = c.into_bytes();
        edited[5] = if edited[5] == b'A' { b'B' } else { b'A' };
        assert_eq!(cursor::decode("price:asc", std::str::from_utf8(&edited).unwrap()), Err(SearchError::InvalidCursor));
        assert_eq!(cursor::decode("price:asc", "!!"), Err(SearchError::InvalidCursor));
    }

    #[test]
    fn facet_requests_use_the_elasticsearch_aggregation_format() {
        let facets = vec![
            FacetRequest::Terms(("category_id".into(), 20)),
            FacetRequest::Ranges((
                "price".into(),
                vec![
                    RangeBucket { key: "*-2500".into(), min: None, max: Some(2500) },
                    RangeBucket { key: "2500-*".into(), min: Some(2500), max: None },
                ],
            )),
        ];
        assert_eq!(
            facet_aggregations(&facets),
            json!({
                "f0": { "terms": { "field": "category_id", "size": 20 } },
                "f1": { "range": { "field": "price", "ranges": [
                    { "key": "*-2500", "to": 2500.0 },
                    { "key": "2500-*", "from": 2500.0 }
                ] } }
            })
        );
        let response = json!({
            "f0": { "buckets": [{ "key": "c1", "doc_count": 3 }, { "key": "c2", "doc_count": 1 }] },
            "f1": { "buckets": [{ "key": "2500-*", "doc_count": 4, "from": 2500.0 }] }
        });
        let parsed = facets_from_aggregations(&facets, &response);
        assert_eq!(
            parsed[0].buckets,
            vec![Bucket { key: "c1".into(), count: 3 }, Bucket { key: "c2".into(), count: 1 }]
        );
        assert_eq!(
            parsed[1].buckets,
            vec![Bucket { key: "*-2500".into(), count: 0 }, Bucket { key: "2500-*".into(), count: 4 }]
        );
    }
}
