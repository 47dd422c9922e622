//! The distributed search engine: Elasticsearch, through the official
//! `elasticsearch` crate.
//!
//! Each index is an alias (`PREFIX + name`) over a physical index
//! (`alias-<generation>`). Reads and writes go through the alias; a rebuild
//! fills a new physical index and swaps the alias in one `_aliases` call.
//! Writes use external versions (`version_type: external_gte`), so a
//! replayed or late change never overwrites a newer one; deletions are
//! versioned tombstones (`doc_deleted: true`) that queries exclude. Bulk
//! writes wait for refresh, so a drained change is searchable at once.
//!
//! The request bodies are built by the pure functions at the top
//! ([`mapping`], [`search_body`], [`bulk_lines`], [`alias_swap`]) so tests
//! can check them exactly.

use std::collections::HashMap;
use std::sync::RwLock;

use elasticsearch::http::request::JsonBody;
use elasticsearch::http::transport::Transport;
use elasticsearch::indices::{IndicesCreateParts, IndicesDeleteParts, IndicesGetAliasParts, IndicesGetMappingParts};
use elasticsearch::params::Refresh;
use elasticsearch::{BulkParts, Elasticsearch, SearchParts};
use serde_json::{Value as Json, json};

use super::{
    Direction, FieldKind, FieldValue, Filter, Hit, IndexOp, IndexSchema, Query, Results, SearchBackend, SearchError,
    Sort, cursor, facet_aggregations, facets_from_aggregations, limits, reserved, sort_descriptor, validate_schema,
};

const ANALYZER: &str = "polyscale_text";

/// Index settings and mappings for a schema. The schema itself is kept in
/// `_meta`, to tell later whether the index was built for it.
pub fn mapping(schema: &IndexSchema) -> Json {
    let mut properties = serde_json::Map::new();
    properties.insert(reserved::ID.into(), json!({ "type": "keyword" }));
    properties.insert(reserved::VERSION.into(), json!({ "type": "long" }));
    properties.insert(reserved::DELETED.into(), json!({ "type": "boolean" }));
    for f in &schema.fields {
        let property = match f.kind {
            FieldKind::Text if f.suggest => json!({
                "type": "text",
                "analyzer": ANALYZER,
                "fields": { "suggest": { "type": "search_as_you_type" } }
            }),
            FieldKind::Text => json!({ "type": "text", "analyzer": ANALYZER }),
            FieldKind::Keyword => json!({ "type": "keyword" }),
            FieldKind::Integer => json!({ "type": "long" }),
            FieldKind::Boolean => json!({ "type": "boolean" }),
        };
        properties.insert(f.name.clone(), property);
    }
    json!({
        "settings": {
            "analysis": {
                "analyzer": {
                    ANALYZER: { "type": "custom", "tokenizer": "standard", "filter": ["lowercase", "asciifolding", "porter_stem"] }
                }
            }
        },
        "mappings": {
            "dynamic": "strict",
            "_meta": { "polyscale_schema": serde_json::to_value(schema).unwrap_or_default() },
            "properties": properties
        }
    })
}

fn text_fields(schema: &IndexSchema) -> Vec<String> {
    schema.fields.iter().filter(|f| f.kind == FieldKind::Text).map(|f| format!("{}^{}", f.name, f.boost)).collect()
}

fn field_of<'a>(schema: &'a IndexSchema, name: &str, kind: FieldKind) -> Result<&'a str, SearchError> {
    schema
        .fields
        .iter()
        .find(|f| f.name == name && f.kind == kind)
        .map(|f| f.name.as_str())
        .ok_or_else(|| SearchError::InvalidQuery(format!("`{name}` is not a {kind:?} field of this index")))
}

/// The `_search` body of a query (first + 1 hits, to know whether another
/// page follows).
pub fn search_body(schema: &IndexSchema, q: &Query) -> Result<Json, SearchError> {
    let mut must = Vec::new();
    match q.text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        Some(text) => {
            // `multi_match` takes the text as data: no query syntax.
            let text: String = text.split_whitespace().take(limits::MAX_TOKENS).collect::<Vec<_>>().join(" ");
            must.push(json!({ "multi_match": { "query": text, "fields": text_fields(schema), "fuzziness": "AUTO", "operator": "or" } }));
        }
        None => must.push(json!({ "match_all": {} })),
    }
    let mut filter = Vec::new();
    for f in &q.filters {
        filter.push(match f {
            Filter::AnyOf((name, values)) => {
                if values.len() > limits::MAX_FILTER_VALUES {
                    return Err(SearchError::InvalidQuery(format!(
                        "at most {} values per filter",
                        limits::MAX_FILTER_VALUES
                    )));
                }
                json!({ "terms": { field_of(schema, name, FieldKind::Keyword)?: values } })
            }
            Filter::Range(r) => {
                let mut range = serde_json::Map::new();
                if let Some(min) = r.min {
                    range.insert("gte".into(), json!(min));
                }
                if let Some(max) = r.max {
                    range.insert("lte".into(), json!(max));
                }
                json!({ "range": { field_of(schema, &r.field, FieldKind::Integer)?: range } })
            }
            Filter::Is((name, value)) => json!({ "term": { field_of(schema, name, FieldKind::Boolean)?: value } }),
        });
    }
    let sort = match &q.sort {
        Sort::Relevance => json!([{ "_score": "desc" }, { reserved::ID: "asc" }]),
        Sort::Field((name, direction)) => {
            let order = if *direction == Direction::Ascending { "asc" } else { "desc" };
            json!([{ field_of(schema, name, FieldKind::Integer)?: order }, { reserved::ID: "asc" }])
        }
    };
    let mut body = json!({
        "size": q.first.clamp(1, limits::MAX_PAGE) + 1,
        "track_total_hits": true,
        "_source": [reserved::ID],
        "query": { "bool": { "must": must, "filter": filter, "must_not": [{ "term": { reserved::DELETED: true } }] } },
        "sort": sort,
        "aggs": facet_aggregations(&q.facets),
    });
    if let Some(c) = &q.after {
        let values = cursor::decode(&sort_descriptor(&q.sort), c)?;
        if !values.is_array() {
            return Err(SearchError::InvalidCursor);
        }
        body["search_after"] = values;
    }
    Ok(body)
}

fn source(op: &IndexOp) -> Json {
    let mut doc = serde_json::Map::new();
    doc.insert(reserved::ID.into(), json!(op.id()));
    doc.insert(reserved::VERSION.into(), json!(op.version()));
    match op {
        IndexOp::Remove { .. } => {
            doc.insert(reserved::DELETED.into(), json!(true));
        }
        IndexOp::Upsert(d) => {
            doc.insert(reserved::DELETED.into(), json!(false));
            for f in &d.fields {
                let value = match &f.value {
                    FieldValue::Text(v) | FieldValue::Keyword(v) => json!(v),
                    FieldValue::Keywords(vs) => json!(vs),
                    FieldValue::Integer(v) => json!(v),
                    FieldValue::Boolean(v) => json!(v),
                };
                doc.insert(f.name.clone(), value);
            }
        }
    }
    Json::Object(doc)
}

/// The `_bulk` lines (action, source) for changes to `target`.
pub fn bulk_lines(target: &str, ops: &[IndexOp]) -> Vec<Json> {
    ops.iter()
        .flat_map(|op| {
            [
                json!({ "index": { "_index": target, "_id": op.id(), "version": op.version(), "version_type": "external_gte" } }),
                source(op),
            ]
        })
        .collect()
}

/// The `_aliases` actions moving `alias` from `old` to `new` atomically.
pub fn alias_swap(alias: &str, old: &str, new: &str) -> Json {
    json!({ "actions": [
        { "remove": { "index": old, "alias": alias } },
        { "add": { "index": new, "alias": alias } }
    ] })
}

fn generation_name(alias: &str) -> String {
    let stamp =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros()).unwrap_or_default();
    format!("{alias}-{stamp}")
}

struct IndexState {
    schema: IndexSchema,
    physical: String,
    /// The physical index being filled by a rebuild.
    next: Option<String>,
}

pub struct ElasticsearchBackend {
    client: Elasticsearch,
    prefix: String,
    indexes: RwLock<HashMap<String, IndexState>>,
}

fn transport_error(e: elasticsearch::Error) -> SearchError {
    SearchError::Unavailable(format!("elasticsearch: {e}"))
}

async fn checked(
    response: Result<elasticsearch::http::response::Response, elasticsearch::Error>,
) -> Result<Json, SearchError> {
    let response = response.map_err(transport_error)?;
    let status = response.status_code();
    let body: Json = response.json().await.map_err(transport_error)?;
    if status.is_success() {
        return Ok(body);
    }
    let reason = body["error"]["reason"].as_str().unwrap_or("unknown error").to_string();
    Err(match status.as_u16() {
        404 => SearchError::UnknownIndex(reason),
        400 => SearchError::InvalidQuery(reason),
        _ => SearchError::Unavailable(format!("elasticsearch {status}: {reason}")),
    })
}

impl ElasticsearchBackend {
    /// `url` like `http://localhost:9200`; indexes are named `prefix + name`.
    pub fn new(url: &str, prefix: &str) -> Result<Self, SearchError> {
        let transport = Transport::single_node(url).map_err(transport_error)?;
        Ok(Self {
            client: Elasticsearch::new(transport),
            prefix: prefix.to_string(),
            indexes: RwLock::new(HashMap::new()),
        })
    }

    fn alias(&self, index: &str) -> String {
        format!("{}{index}", self.prefix)
    }

    fn state<T>(&self, index: &str, f: impl FnOnce(&IndexState) -> T) -> Result<T, SearchError> {
        self.indexes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(index)
            .map(f)
            .ok_or_else(|| SearchError::UnknownIndex(index.into()))
    }

    async fn create_physical(&self, schema: &IndexSchema, alias: Option<&str>) -> Result<String, SearchError> {
        let name = generation_name(&self.alias(&schema.name));
        let mut body = mapping(schema);
        if let Some(alias) = alias {
            body["aliases"] = json!({ alias: {} });
        }
        checked(self.client.indices().create(IndicesCreateParts::Index(&name)).body(body).send().await).await?;
        Ok(name)
    }

    async fn bulk(&self, target: &str, ops: &[IndexOp]) -> Result<(), SearchError> {
        if ops.is_empty() {
            return Ok(());
        }
        let lines: Vec<JsonBody<Json>> = bulk_lines(target, ops).into_iter().map(JsonBody::new).collect();
        let body =
            checked(self.client.bulk(BulkParts::None).refresh(Refresh::WaitFor).body(lines).send().await).await?;
        if body["errors"].as_bool() == Some(true) {
            for item in body["items"].as_array().into_iter().flatten() {
                let result = &item["index"];
                // A conflict is an older version arriving late: skipping it
                // is the point of versioning.
                if result["status"].as_u64().is_some_and(|s| s >= 300 && s != 409) {
                    return Err(SearchError::Unavailable(format!(
                        "elasticsearch refused a document: {}",
                        result["error"]
                    )));
                }
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl SearchBackend for ElasticsearchBackend {
    fn engine(&self) -> &'static str {
        "elasticsearch"
    }

    async fn ensure_index(&self, schema: &IndexSchema) -> Result<bool, SearchError> {
        validate_schema(schema)?;
        let alias = self.alias(&schema.name);
        let existing =
            checked(self.client.indices().get_alias(IndicesGetAliasParts::Name(&[&alias])).send().await).await;
        let (physical, fresh) = match existing {
            Ok(body) => {
                let physical = body
                    .as_object()
                    .and_then(|m| m.keys().next().cloned())
                    .ok_or_else(|| SearchError::UnknownIndex(alias.clone()))?;
                let mapping = checked(
                    self.client.indices().get_mapping(IndicesGetMappingParts::Index(&[&physical])).send().await,
                )
                .await?;
                let stored = mapping[&physical]["mappings"]["_meta"]["polyscale_schema"].clone();
                let same = serde_json::from_value::<IndexSchema>(stored).ok().as_ref() == Some(schema);
                (physical, !same)
            }
            Err(SearchError::UnknownIndex(_)) => (self.create_physical(schema, Some(&alias)).await?, true),
            Err(e) => return Err(e),
        };
        self.indexes
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(schema.name.clone(), IndexState { schema: schema.clone(), physical, next: None });
        Ok(fresh)
    }

    async fn apply(&self, index: &str, ops: &[IndexOp]) -> Result<(), SearchError> {
        let (alias, next) = (self.alias(index), self.state(index, |s| s.next.clone())?);
        self.bulk(&alias, ops).await?;
        if let Some(next) = next {
            self.bulk(&next, ops).await?;
        }
        Ok(())
    }

    async fn search(&self, q: &Query) -> Result<Results, SearchError> {
        let schema = self.state(&q.index, |s| s.schema.clone())?;
        let body = search_body(&schema, q)?;
        let alias = self.alias(&q.index);
        let response = checked(self.client.search(SearchParts::Index(&[&alias])).body(body).send().await).await?;
        let first = q.first.clamp(1, limits::MAX_PAGE) as usize;
        let raw_hits = response["hits"]["hits"].as_array().cloned().unwrap_or_default();
        let sort = sort_descriptor(&q.sort);
        let hits: Vec<Hit> = raw_hits
            .iter()
            .take(first)
            .map(|h| Hit {
                id: h["_source"][reserved::ID].as_str().unwrap_or_default().to_string(),
                cursor: cursor::encode(&sort, &h["sort"]),
            })
            .collect();
        Ok(Results {
            hits,
            total: response["hits"]["total"]["value"].as_u64().unwrap_or(0),
            has_next_page: raw_hits.len() > first,
            facets: facets_from_aggregations(&q.facets, &response["aggregations"]),
        })
    }

    async fn suggest(&self, index: &str, field: &str, prefix: &str, limit: u32) -> Result<Vec<String>, SearchError> {
        let schema = self.state(index, |s| s.schema.clone())?;
        let f = schema
            .fields
            .iter()
            .find(|f| f.name == field && f.kind == FieldKind::Text && f.suggest)
            .ok_or_else(|| SearchError::InvalidQuery(format!("`{field}` offers no suggestions")))?;
        let body = json!({
            "size": 50,
            "_source": [f.name],
            "query": { "bool": {
                "must": [{ "multi_match": {
                    "query": prefix,
                    "type": "bool_prefix",
                    "fields": [format!("{}.suggest", f.name), format!("{}.suggest._2gram", f.name), format!("{}.suggest._3gram", f.name)]
                } }],
                "must_not": [{ "term": { reserved::DELETED: true } }]
            } }
        });
        let alias = self.alias(index);
        let response = checked(self.client.search(SearchParts::Index(&[&alias])).body(body).send().await).await?;
        let mut out: Vec<String> = Vec::new();
        for hit in response["hits"]["hits"].as_array().into_iter().flatten() {
            if let Some(value) = hit["_source"][&f.name].as_str()
                && !out.iter().any(|o| o.eq_ignore_ascii_case(value))
            {
                out.push(value.to_string());
            }
            if out.len() >= limit.min(limits::MAX_SUGGESTIONS) as usize {
                break;
            }
        }
        Ok(out)
    }

    async fn begin_rebuild(&self, schema: &IndexSchema) -> Result<(), SearchError> {
        let next = self.create_physical(schema, None).await?;
        let mut indexes = self.indexes.write().unwrap_or_else(|p| p.into_inner());
        let state = indexes.get_mut(&schema.name).ok_or_else(|| SearchError::UnknownIndex(schema.name.clone()))?;
        state.next = Some(next);
        state.schema = schema.clone();
        Ok(())
    }

    async fn load_rebuild(&self, index: &str, ops: &[IndexOp]) -> Result<(), SearchError> {
        let next = self
            .state(index, |s| s.next.clone())?
            .ok_or_else(|| SearchError::Unavailable("no rebuild in progress".into()))?;
        self.bulk(&next, ops).await
    }

    async fn finish_rebuild(&self, index: &str) -> Result<(), SearchError> {
        let (old, next) = self.state(index, |s| (s.physical.clone(), s.next.clone()))?;
        let next = next.ok_or_else(|| SearchError::Unavailable("no rebuild in progress".into()))?;
        let alias = self.alias(index);
        checked(self.client.indices().update_aliases().body(alias_swap(&alias, &old, &next)).send().await).await?;
        if let Some(state) = self.indexes.write().unwrap_or_else(|p| p.into_inner()).get_mut(index) {
            state.physical = next;
            state.next = None;
        }
        if let Err(e) = checked(self.client.indices().delete(IndicesDeleteParts::Index(&[&old])).send().await).await {
            tracing::warn!(index = %old, error = ?e, "the previous index generation could not be deleted");
        }
        Ok(())
    }
}
