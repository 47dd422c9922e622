//! The embedded search engine: one Tantivy index per index name, in
//! generations under a directory.
//!
//! ```text
//! ROOT/products/CURRENT          -> "gen-1733000000000"
//! ROOT/products/gen-…/           the Tantivy index
//! ROOT/products/gen-…/polyscale-schema.json
//! ```
//!
//! Paging is `search_after`, like Elasticsearch: a cursor holds the last
//! hit's sort value (as `f64` bits) and tie-breaker (a 64-bit hash of its
//! id), and the next
//! page is the best hits strictly after it ([`SearchAfter`]). Free text is
//! tokenised with the index's own analyser and matched exactly and
//! fuzzily; it is never parsed as query syntax.

use std::collections::{BinaryHeap, HashMap};
use std::hash::{Hash, Hasher};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use serde_json::json;
use tantivy::aggregation::AggregationCollector;
use tantivy::aggregation::agg_req::Aggregations;
use tantivy::collector::{Collector, Count, SegmentCollector, TopDocs};
use tantivy::columnar::Column;
use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, FuzzyTermQuery, Occur, Query as TantivyQuery, RangeQuery, TermQuery,
    TermSetQuery,
};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions, Value as _,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, TextAnalyzer,
};
use tantivy::{
    DocAddress, Index, IndexReader, IndexWriter, ReloadPolicy, Score, SegmentOrdinal, SegmentReader, TantivyDocument,
    Term,
};

use super::{
    Direction, Document, FieldKind, FieldValue, Filter, Hit, IndexOp, IndexSchema, Query, Results, SearchBackend,
    SearchError, Sort, cursor, facet_aggregations, facets_from_aggregations, fuzziness, limits, reserved,
    sort_descriptor, unavailable, validate_schema,
};

const ANALYZER: &str = "polyscale_text";
const WRITER_MEMORY: usize = 64 << 20;

fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .filter(Stemmer::new(Language::English))
        .build()
}

fn tiebreak(id: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut h);
    h.finish()
}

fn engine_error(e: impl std::fmt::Display) -> SearchError {
    SearchError::Unavailable(format!("tantivy: {e}"))
}

struct FieldInfo {
    field: Field,
    kind: FieldKind,
    boost: f32,
    suggest: bool,
}

/// One generation of one index.
struct Generation {
    index: Index,
    reader: IndexReader,
    writer: Mutex<IndexWriter<TantivyDocument>>,
    fields: HashMap<String, FieldInfo>,
    id: Field,
    version: Field,
    deleted: Field,
    tiebreak: Field,
    dir: PathBuf,
}

impl Generation {
    fn create(dir: &Path, schema: &IndexSchema) -> Result<Self, SearchError> {
        std::fs::create_dir_all(dir).map_err(engine_error)?;
        let mut builder = Schema::builder();
        let id = builder.add_text_field(reserved::ID, STRING | STORED | FAST);
        let version = builder.add_i64_field(reserved::VERSION, INDEXED | FAST);
        let deleted = builder.add_bool_field(reserved::DELETED, INDEXED | FAST);
        let tiebreak = builder.add_u64_field(reserved::TIEBREAK, FAST);
        for f in &schema.fields {
            match f.kind {
                FieldKind::Text => {
                    let indexing = TextFieldIndexing::default()
                        .set_tokenizer(ANALYZER)
                        .set_index_option(IndexRecordOption::WithFreqsAndPositions);
                    let mut options = TextOptions::default().set_indexing_options(indexing);
                    if f.suggest {
                        options = options.set_stored();
                    }
                    builder.add_text_field(&f.name, options);
                }
                FieldKind::Keyword => {
                    builder.add_text_field(&f.name, STRING | FAST);
                }
                FieldKind::Integer => {
                    builder.add_i64_field(&f.name, INDEXED | FAST);
                }
                FieldKind::Boolean => {
                    builder.add_bool_field(&f.name, INDEXED | FAST);
                }
            }
        }
        let index = Index::create_in_dir(dir, builder.build()).map_err(engine_error)?;
        std::fs::write(dir.join("polyscale-schema.json"), serde_json::to_vec(schema).unwrap_or_default())
            .map_err(engine_error)?;
        Self::from_index(index, dir, schema, [id, version, deleted, tiebreak])
    }

    fn open(dir: &Path, schema: &IndexSchema) -> Result<Self, SearchError> {
        let index = Index::open_in_dir(dir).map_err(engine_error)?;
        let s = index.schema();
        let get = |name| s.get_field(name).map_err(engine_error);
        let reserved = [get(reserved::ID)?, get(reserved::VERSION)?, get(reserved::DELETED)?, get(reserved::TIEBREAK)?];
        Self::from_index(index, dir, schema, reserved)
    }

    fn from_index(
        index: Index,
        dir: &Path,
        schema: &IndexSchema,
        [id, version, deleted, tiebreak]: [Field; 4],
    ) -> Result<Self, SearchError> {
        index.tokenizers().register(ANALYZER, analyzer());
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into().map_err(engine_error)?;
        let writer = index.writer(WRITER_MEMORY).map_err(engine_error)?;
        let s = index.schema();
        let mut fields = HashMap::new();
        for f in &schema.fields {
            let field = s.get_field(&f.name).map_err(engine_error)?;
            fields.insert(f.name.clone(), FieldInfo { field, kind: f.kind, boost: f.boost, suggest: f.suggest });
        }
        Ok(Self {
            index,
            reader,
            writer: Mutex::new(writer),
            fields,
            id,
            version,
            deleted,
            tiebreak,
            dir: dir.to_path_buf(),
        })
    }

    fn field(&self, name: &str, kinds: &[FieldKind]) -> Result<&FieldInfo, SearchError> {
        self.fields
            .get(name)
            .filter(|f| kinds.contains(&f.kind))
            .ok_or_else(|| SearchError::InvalidQuery(format!("`{name}` is not a {kinds:?} field of this index")))
    }

    /// The version of a document as currently indexed (tombstones count).
    fn indexed_version(&self, searcher: &tantivy::Searcher, id: &str) -> Result<Option<i64>, SearchError> {
        let query = TermQuery::new(Term::from_field_text(self.id, id), IndexRecordOption::Basic);
        let top = searcher.search(&query, &TopDocs::with_limit(1).order_by_score()).map_err(engine_error)?;
        let Some((_, address)) = top.into_iter().next() else { return Ok(None) };
        let column =
            searcher.segment_reader(address.segment_ord).fast_fields().i64(reserved::VERSION).map_err(engine_error)?;
        Ok(column.first(address.doc_id))
    }

    fn document(&self, op: &IndexOp) -> Result<TantivyDocument, SearchError> {
        let mut doc = TantivyDocument::default();
        doc.add_text(self.id, op.id());
        doc.add_i64(self.version, op.version());
        doc.add_u64(self.tiebreak, tiebreak(op.id()));
        let IndexOp::Upsert(Document { fields, .. }) = op else {
            doc.add_bool(self.deleted, true);
            return Ok(doc);
        };
        doc.add_bool(self.deleted, false);
        for f in fields {
            let Some(info) = self.fields.get(&f.name) else {
                return Err(SearchError::InvalidQuery(format!("`{}` is not a field of this index", f.name)));
            };
            match (&f.value, info.kind) {
                (FieldValue::Text(v), FieldKind::Text) | (FieldValue::Keyword(v), FieldKind::Keyword) => {
                    doc.add_text(info.field, v)
                }
                (FieldValue::Keywords(vs), FieldKind::Keyword) => vs.iter().for_each(|v| doc.add_text(info.field, v)),
                (FieldValue::Integer(v), FieldKind::Integer) => doc.add_i64(info.field, *v),
                (FieldValue::Boolean(v), FieldKind::Boolean) => doc.add_bool(info.field, *v),
                (value, kind) => {
                    return Err(SearchError::InvalidQuery(format!("field `{}` is {kind:?}, got {value:?}", f.name)));
                }
            }
        }
        Ok(doc)
    }

    /// Applies changes (newer versions only), commits and reloads.
    fn apply(&self, ops: &[IndexOp]) -> Result<(), SearchError> {
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let searcher = self.reader.searcher();
        let mut pending: HashMap<&str, i64> = HashMap::new();
        for op in ops {
            let current = match pending.get(op.id()) {
                Some(v) => Some(*v),
                None => self.indexed_version(&searcher, op.id())?,
            };
            if current.is_some_and(|v| v >= op.version()) {
                continue;
            }
            writer.delete_term(Term::from_field_text(self.id, op.id()));
            writer.add_document(self.document(op)?).map_err(engine_error)?;
            pending.insert(op.id(), op.version());
        }
        if !pending.is_empty() {
            writer.commit().map_err(engine_error)?;
            self.reader.reload().map_err(engine_error)?;
        }
        Ok(())
    }

    fn tokens(&self, text: &str) -> Vec<String> {
        let mut analyzer = self.index.tokenizers().get(ANALYZER).unwrap_or_else(analyzer);
        let mut stream = analyzer.token_stream(text);
        let mut tokens = Vec::new();
        while stream.advance() {
            if !tokens.contains(&stream.token().text) {
                tokens.push(stream.token().text.clone());
            }
        }
        tokens.truncate(limits::MAX_TOKENS);
        tokens
    }

    /// Exact and (for words the index does not contain) fuzzy matches of
    /// each token in every text field.
    ///
    /// A token some document contains is taken as spelled right and
    /// matched exactly; only unknown tokens ("lapotp") are expanded to
    /// their neighbours within the edit distance. Expanding every token
    /// walks the term dictionary of every field for each one, which on a
    /// large catalog costs more than the rest of the query.
    fn text_query(&self, searcher: &tantivy::Searcher, text: &str) -> Option<Box<dyn TantivyQuery>> {
        let mut clauses: Vec<(Occur, Box<dyn TantivyQuery>)> = Vec::new();
        let text_fields: Vec<&FieldInfo> = self.fields.values().filter(|f| f.kind == FieldKind::Text).collect();
        for token in self.tokens(text) {
            let known = text_fields
                .iter()
                .any(|info| searcher.doc_freq(&Term::from_field_text(info.field, &token)).unwrap_or(0) > 0);
            for info in &text_fields {
                let term = Term::from_field_text(info.field, &token);
                clauses.push((
                    Occur::Should,
                    Box::new(BoostQuery::new(
                        Box::new(TermQuery::new(term.clone(), IndexRecordOption::WithFreqs)),
                        info.boost,
                    )),
                ));
                let distance = fuzziness(&token);
                if !known && distance > 0 {
                    clauses.push((
                        Occur::Should,
                        Box::new(BoostQuery::new(Box::new(FuzzyTermQuery::new(term, distance, true)), info.boost)),
                    ));
                }
            }
        }
        (!clauses.is_empty()).then(|| Box::new(BooleanQuery::new(clauses)) as Box<dyn TantivyQuery>)
    }

    fn query(&self, searcher: &tantivy::Searcher, q: &Query) -> Result<BooleanQuery, SearchError> {
        let mut clauses: Vec<(Occur, Box<dyn TantivyQuery>)> = Vec::new();
        match q.text.as_deref().and_then(|t| self.text_query(searcher, t)) {
            Some(text) => clauses.push((Occur::Must, text)),
            None if q.text.as_deref().is_some_and(|t| !t.trim().is_empty()) => {
                // Text with no searchable token (punctuation only) matches nothing.
                return Ok(BooleanQuery::new(vec![(Occur::MustNot, Box::new(AllQuery))]));
            }
            None => clauses.push((Occur::Must, Box::new(AllQuery))),
        }
        for filter in &q.filters {
            let clause: Box<dyn TantivyQuery> = match filter {
                Filter::AnyOf((name, values)) => {
                    let info = self.field(name, &[FieldKind::Keyword])?;
                    if values.len() > limits::MAX_FILTER_VALUES {
                        return Err(SearchError::InvalidQuery(format!(
                            "at most {} values per filter",
                            limits::MAX_FILTER_VALUES
                        )));
                    }
                    Box::new(TermSetQuery::new(values.iter().map(|v| Term::from_field_text(info.field, v))))
                }
                Filter::Range(r) => {
                    let info = self.field(&r.field, &[FieldKind::Integer])?;
                    let bound = |v: Option<i64>| {
                        v.map_or(Bound::Unbounded, |v| Bound::Included(Term::from_field_i64(info.field, v)))
                    };
                    if r.min.is_none() && r.max.is_none() {
                        continue;
                    }
                    Box::new(RangeQuery::new(bound(r.min), bound(r.max)))
                }
                Filter::Is((name, value)) => {
                    let info = self.field(name, &[FieldKind::Boolean])?;
                    Box::new(TermQuery::new(Term::from_field_bool(info.field, *value), IndexRecordOption::Basic))
                }
            };
            clauses.push((Occur::Must, clause));
        }
        clauses.push((
            Occur::MustNot,
            Box::new(TermQuery::new(Term::from_field_bool(self.deleted, true), IndexRecordOption::Basic)),
        ));
        Ok(BooleanQuery::new(clauses))
    }

    fn search(&self, q: &Query) -> Result<Results, SearchError> {
        let searcher = self.reader.searcher();
        let query = self.query(&searcher, q)?;
        let sort_name = sort_descriptor(&q.sort);
        let key = match &q.sort {
            Sort::Relevance => SortKey::Score,
            Sort::Field((name, direction)) => {
                self.field(name, &[FieldKind::Integer])?;
                SortKey::Column(name.clone(), *direction == Direction::Descending)
            }
        };
        let after = match &q.after {
            Some(c) => {
                let v = cursor::decode(&sort_name, c)?;
                match (v[0].as_u64(), v[1].as_u64()) {
                    (Some(bits), Some(tie)) => Some((f64::from_bits(bits), tie)),
                    _ => return Err(SearchError::InvalidCursor),
                }
            }
            None => None,
        };
        let first = q.first.clamp(1, limits::MAX_PAGE) as usize;
        let aggregations: Aggregations = serde_json::from_value(facet_aggregations(&q.facets))
            .map_err(|e| SearchError::InvalidQuery(format!("facets: {e}")))?;
        let collector = (
            Count,
            AggregationCollector::from_aggs(aggregations, Default::default()),
            SearchAfter { limit: first + 1, key, after },
        );
        let (total, aggregated, mut ranked) = searcher.search(&query, &collector).map_err(|e| match e {
            tantivy::TantivyError::FieldNotFound(f) | tantivy::TantivyError::SchemaError(f) => {
                SearchError::InvalidQuery(f)
            }
            other => engine_error(other),
        })?;
        let has_next_page = ranked.len() > first;
        ranked.truncate(first);
        let mut hits = Vec::with_capacity(ranked.len());
        for r in ranked {
            let doc: TantivyDocument = searcher.doc(r.address).map_err(engine_error)?;
            let id = doc.get_first(self.id).and_then(|v| v.as_str()).unwrap_or_default().to_string();
            // The sort value travels as its bits: a decimal float would not
            // always parse back to the same number, and ties would shift.
            hits.push(Hit { id, cursor: cursor::encode(&sort_name, &json!([r.primary.to_bits(), r.tiebreak])) });
        }
        let aggregated = serde_json::to_value(aggregated).map_err(engine_error)?;
        Ok(Results {
            hits,
            total: total as u64,
            has_next_page,
            facets: facets_from_aggregations(&q.facets, &aggregated),
        })
    }

    fn suggest(&self, field: &str, prefix: &str, limit: u32) -> Result<Vec<String>, SearchError> {
        let info = self.field(field, &[FieldKind::Text])?;
        if !info.suggest {
            return Err(SearchError::InvalidQuery(format!("`{field}` offers no suggestions")));
        }
        let tokens = self.tokens(prefix);
        let Some((last, rest)) = tokens.split_last() else { return Ok(Vec::new()) };
        let mut clauses: Vec<(Occur, Box<dyn TantivyQuery>)> = rest
            .iter()
            .map(|t| {
                (
                    Occur::Must,
                    Box::new(TermQuery::new(Term::from_field_text(info.field, t), IndexRecordOption::WithFreqs))
                        as Box<dyn TantivyQuery>,
                )
            })
            .collect();
        clauses.push((
            Occur::Must,
            Box::new(FuzzyTermQuery::new_prefix(Term::from_field_text(info.field, last), 0, true)),
        ));
        clauses.push((
            Occur::MustNot,
            Box::new(TermQuery::new(Term::from_field_bool(self.deleted, true), IndexRecordOption::Basic)),
        ));
        let searcher = self.reader.searcher();
        let top = searcher
            .search(&BooleanQuery::new(clauses), &TopDocs::with_limit(100).order_by_score())
            .map_err(engine_error)?;
        let mut out: Vec<String> = Vec::new();
        for (_, address) in top {
            let doc: TantivyDocument = searcher.doc(address).map_err(engine_error)?;
            if let Some(value) = doc.get_first(info.field).and_then(|v| v.as_str())
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
}

#[derive(Clone)]
enum SortKey {
    Score,
    /// An integer fast field; true for descending.
    Column(String, bool),
}

/// Collects the best `limit` hits strictly after a cursor, ordered by a
/// sort key and then by the id's hash.
struct SearchAfter {
    limit: usize,
    key: SortKey,
    after: Option<(f64, u64)>,
}

#[derive(Debug, Clone, Copy)]
struct Ranked {
    primary: f64,
    tiebreak: u64,
    address: DocAddress,
    /// The position key: smaller ranks first.
    rank: (f64, u64),
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}
impl Eq for Ranked {}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.rank.0.total_cmp(&other.rank.0).then(self.rank.1.cmp(&other.rank.1))
    }
}

fn rank(descending: bool, primary: f64, tiebreak: u64) -> (f64, u64) {
    (if descending { -primary } else { primary }, tiebreak)
}

struct SegmentAfter {
    segment: SegmentOrdinal,
    limit: usize,
    column: Option<Column<i64>>,
    descending: bool,
    tiebreaks: Column<u64>,
    after: Option<(f64, u64)>,
    /// Max-heap by rank: the worst kept hit on top.
    heap: BinaryHeap<Ranked>,
}

impl Collector for SearchAfter {
    type Fruit = Vec<Ranked>;
    type Child = SegmentAfter;

    fn for_segment(&self, segment: SegmentOrdinal, reader: &SegmentReader) -> tantivy::Result<SegmentAfter> {
        let (column, descending) = match &self.key {
            SortKey::Score => (None, true),
            SortKey::Column(name, descending) => (Some(reader.fast_fields().i64(name)?), *descending),
        };
        Ok(SegmentAfter {
            segment,
            limit: self.limit,
            column,
            descending,
            tiebreaks: reader.fast_fields().u64(reserved::TIEBREAK)?,
            after: self.after,
            heap: BinaryHeap::with_capacity(self.limit + 1),
        })
    }

    fn requires_scoring(&self) -> bool {
        matches!(self.key, SortKey::Score)
    }

    fn merge_fruits(&self, fruits: Vec<Vec<Ranked>>) -> tantivy::Result<Vec<Ranked>> {
        let mut all: Vec<Ranked> = fruits.into_iter().flatten().collect();
        all.sort();
        all.truncate(self.limit);
        Ok(all)
    }
}

impl SegmentCollector for SegmentAfter {
    type Fruit = Vec<Ranked>;

    fn collect(&mut self, doc: u32, score: Score) {
        let primary = match &self.column {
            None => f64::from(score),
            Some(c) => c.first(doc).map_or(f64::NEG_INFINITY, |v| v as f64),
        };
        let tiebreak = self.tiebreaks.first(doc).unwrap_or(0);
        let rank = rank(self.descending, primary, tiebreak);
        if let Some((p, t)) = self.after {
            let cursor = self::rank(self.descending, p, t);
            if rank.0.total_cmp(&cursor.0).then(rank.1.cmp(&cursor.1)).is_le() {
                return;
            }
        }
        let ranked = Ranked { primary, tiebreak, address: DocAddress::new(self.segment, doc), rank };
        if self.heap.len() < self.limit {
            self.heap.push(ranked);
        } else if self.heap.peek().is_some_and(|worst| ranked < *worst) {
            self.heap.pop();
            self.heap.push(ranked);
        }
    }

    fn harvest(self) -> Vec<Ranked> {
        self.heap.into_vec()
    }
}

/// Current and (during a rebuild) next generation of one index.
struct Generations {
    current: RwLock<Arc<Generation>>,
    next: RwLock<Option<Arc<Generation>>>,
    schema: IndexSchema,
}

/// The Tantivy backend: indexes under `root`.
pub struct TantivyBackend {
    root: PathBuf,
    indexes: RwLock<HashMap<String, Arc<Generations>>>,
}

fn new_generation_dir(index_dir: &Path) -> PathBuf {
    let stamp =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros()).unwrap_or_default();
    index_dir.join(format!("gen-{stamp}"))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SearchError> + Send + 'static,
) -> Result<T, SearchError> {
    tokio::task::spawn_blocking(f).await.map_err(engine_error)?
}

impl TantivyBackend {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into(), indexes: RwLock::new(HashMap::new()) }
    }

    fn generations(&self, index: &str) -> Result<Arc<Generations>, SearchError> {
        self.indexes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(index)
            .cloned()
            .ok_or_else(|| SearchError::UnknownIndex(index.to_string()))
    }

    fn current(&self, index: &str) -> Result<Arc<Generation>, SearchError> {
        Ok(self.generations(index)?.current.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

fn switch_current(index_dir: &Path, generation: &Path) -> Result<(), SearchError> {
    let name = generation.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let tmp = index_dir.join("CURRENT.tmp");
    std::fs::write(&tmp, name).map_err(engine_error)?;
    std::fs::rename(tmp, index_dir.join("CURRENT")).map_err(engine_error)
}

#[async_trait::async_trait]
impl SearchBackend for TantivyBackend {
    fn engine(&self) -> &'static str {
        "tantivy"
    }

    async fn ensure_index(&self, schema: &IndexSchema) -> Result<bool, SearchError> {
        validate_schema(schema)?;
        if let Ok(existing) = self.generations(&schema.name) {
            return Ok(existing.schema != *schema);
        }
        let index_dir = self.root.join(&schema.name);
        let schema_owned = schema.clone();
        let (generation, fresh) = blocking(move || {
            let current = std::fs::read_to_string(index_dir.join("CURRENT")).ok().map(|n| index_dir.join(n.trim()));
            let stored = current
                .as_ref()
                .and_then(|dir| std::fs::read(dir.join("polyscale-schema.json")).ok())
                .and_then(|bytes| serde_json::from_slice::<IndexSchema>(&bytes).ok());
            match current {
                Some(dir) if stored.as_ref() == Some(&schema_owned) => {
                    Ok((Generation::open(&dir, &schema_owned)?, false))
                }
                _ => {
                    // New, or built for another schema: a fresh generation,
                    // filled by the rebuild the caller now runs.
                    let dir = new_generation_dir(&index_dir);
                    let generation = Generation::create(&dir, &schema_owned)?;
                    switch_current(&index_dir, &dir)?;
                    Ok((generation, true))
                }
            }
        })
        .await?;
        let generations = Arc::new(Generations {
            current: RwLock::new(Arc::new(generation)),
            next: RwLock::new(None),
            schema: schema.clone(),
        });
        self.indexes.write().unwrap_or_else(|p| p.into_inner()).insert(schema.name.clone(), generations);
        Ok(fresh)
    }

    async fn apply(&self, index: &str, ops: &[IndexOp]) -> Result<(), SearchError> {
        let g = self.generations(index)?;
        let current = g.current.read().unwrap_or_else(|p| p.into_inner()).clone();
        let next = g.next.read().unwrap_or_else(|p| p.into_inner()).clone();
        let ops = ops.to_vec();
        blocking(move || {
            current.apply(&ops)?;
            if let Some(next) = next {
                next.apply(&ops)?;
            }
            Ok(())
        })
        .await
    }

    async fn search(&self, query: &Query) -> Result<Results, SearchError> {
        let current = self.current(&query.index)?;
        let query = query.clone();
        blocking(move || current.search(&query)).await
    }

    async fn suggest(&self, index: &str, field: &str, prefix: &str, limit: u32) -> Result<Vec<String>, SearchError> {
        let current = self.current(index)?;
        let (field, prefix) = (field.to_string(), prefix.to_string());
        blocking(move || current.suggest(&field, &prefix, limit)).await
    }

    async fn begin_rebuild(&self, schema: &IndexSchema) -> Result<(), SearchError> {
        let g = self.generations(&schema.name)?;
        let dir = new_generation_dir(&self.root.join(&schema.name));
        let schema = schema.clone();
        let generation = blocking(move || Generation::create(&dir, &schema)).await?;
        *g.next.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(generation));
        Ok(())
    }

    async fn load_rebuild(&self, index: &str, ops: &[IndexOp]) -> Result<(), SearchError> {
        let g = self.generations(index)?;
        let next = g
            .next
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| unavailable("no rebuild in progress"))?;
        let ops = ops.to_vec();
        blocking(move || next.apply(&ops)).await
    }

    async fn finish_rebuild(&self, index: &str) -> Result<(), SearchError> {
        let g = self.generations(index)?;
        let next = g
            .next
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| unavailable("no rebuild in progress"))?;
        let index_dir = self.root.join(index);
        let next_dir = next.dir.clone();
        blocking(move || switch_current(&index_dir, &next_dir)).await?;
        let old = std::mem::replace(&mut *g.current.write().unwrap_or_else(|p| p.into_inner()), next);
        let old_dir = old.dir.clone();
        drop(old);
        // Searches holding the old generation keep their files open (mmap);
        // removing the directory is safe on Unix.
        let _ = std::fs::remove_dir_all(old_dir);
        Ok(())
    }
}
