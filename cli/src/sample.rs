//! A realistic, deterministic sample catalog, loaded through the product
//! service's public gRPC API (the same path any client takes).

use std::fmt;

use std::path::Path;

use polyscale_proto::account::v1 as account_pb;
use polyscale_proto::account::v1::account_service_client::AccountServiceClient;
use polyscale_proto::admin::v1 as admin_pb;
use polyscale_proto::admin::v1::operator_client::OperatorClient;
use polyscale_proto::product::v1 as pb;
use polyscale_proto::product::v1::product_service_client::ProductServiceClient;
use polyscale_proto::types::v1::Money;
use tonic::transport::Channel;

use crate::admin::{Admin, AdminChannel};

#[derive(Debug, Clone)]
pub struct SampleOptions {
    pub products: usize,
    pub merchants: usize,
    /// Same seed, same catalog.
    pub seed: u64,
}

impl Default for SampleOptions {
    fn default() -> Self {
        Self { products: 48, merchants: 3, seed: 42 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub categories: usize,
    pub products: usize,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sample catalog loaded: {} categories, {} products", self.categories, self.products)
    }
}

/// One category of the generator: names are `brand + model + noun`.
struct Kind {
    category: &'static str,
    brands: &'static [&'static str],
    models: &'static [&'static str],
    nouns: &'static [&'static str],
    /// Price range in cents.
    price: (i64, i64),
    blurb: &'static str,
}

const KINDS: &[Kind] = &[
    Kind {
        category: "Laptops",
        brands: &["Aero", "Nimbus", "Vector", "Lumen", "Corvid"],
        models: &["13", "14 Pro", "15 Air", "16 Max", "X1"],
        nouns: &["Laptop", "Ultrabook", "Notebook"],
        price: (49_900, 329_900),
        blurb: "A light, long-lasting laptop with a bright display and a comfortable keyboard.",
    },
    Kind {
        category: "Phones",
        brands: &["Pixelon", "Orbit", "Nova", "Quanta"],
        models: &["5", "6a", "7 Pro", "Mini", "Ultra"],
        nouns: &["Smartphone", "Phone"],
        price: (19_900, 149_900),
        blurb: "A fast phone with an all-day battery and a camera that handles low light.",
    },
    Kind {
        category: "Headphones",
        brands: &["Sonora", "Hush", "Bassline", "Echo"],
        models: &["Studio", "Go", "Pro", "Sport"],
        nouns: &["Wireless Headphones", "Earbuds", "Noise-Cancelling Headphones"],
        price: (2_900, 44_900),
        blurb: "Clear sound, deep bass and noise cancelling for the commute.",
    },
    Kind {
        category: "Cameras",
        brands: &["Lensa", "Aperture", "Kestrel"],
        models: &["M10", "Z5", "R8", "Compact"],
        nouns: &["Mirrorless Camera", "Action Camera", "Camera"],
        price: (14_900, 249_900),
        blurb: "Sharp photos and 4K video in a body that fits a jacket pocket.",
    },
    Kind {
        category: "Books",
        brands: &["The Quiet", "A Brief", "The Last", "Modern"],
        models: &["Garden", "History of Time", "Algorithm", "Harbour"],
        nouns: &["(Paperback)", "(Hardcover)"],
        price: (899, 3_999),
        blurb: "A bestselling read, printed on recycled paper.",
    },
    Kind {
        category: "Kitchen",
        brands: &["Chef's", "Copper", "Everyday", "Alder"],
        models: &["Cast Iron", "Stainless", "Ceramic", "Nonstick"],
        nouns: &["Skillet", "Dutch Oven", "Knife Set", "Kettle"],
        price: (1_999, 34_900),
        blurb: "Built to last for everyday cooking, dishwasher safe.",
    },
    Kind {
        category: "Outdoor",
        brands: &["Summit", "Trailhead", "Northwind"],
        models: &["2-Person", "Ultralight", "All-Season", "Trek"],
        nouns: &["Tent", "Backpack", "Sleeping Bag", "Rain Jacket"],
        price: (3_999, 59_900),
        blurb: "Weatherproof gear tested on long trails.",
    },
];

/// splitmix64: a tiny deterministic generator (not for secrets).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn range(&mut self, (lo, hi): (i64, i64)) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }
    fn pick<'a>(&mut self, items: &'a [&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// A generated product, before it has an id.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleProduct {
    /// Index of the merchant (0-based) that sells it.
    pub merchant: usize,
    pub category: &'static str,
    pub name: String,
    pub description: String,
    pub price_cents: i64,
    pub stock: i64,
}

pub fn category_names() -> Vec<&'static str> {
    KINDS.iter().map(|k| k.category).collect()
}

/// The `i`-th product of the catalog for `options` (stable for a seed).
pub fn product(options: &SampleOptions, i: usize) -> SampleProduct {
    let mut rng = Rng(options.seed ^ (i as u64).wrapping_mul(0xA076_1D64_78BD_642F));
    let kind = &KINDS[i % KINDS.len()];
    let name = format!("{} {} {}", rng.pick(kind.brands), rng.pick(kind.models), rng.pick(kind.nouns));
    // Prices end in 99 like real shelf prices.
    let price_cents = (rng.range(kind.price) / 100) * 100 + 99;
    // About one in eight is sold out.
    let stock = if rng.below(8) == 0 { 0 } else { rng.range((1, 250)) };
    SampleProduct {
        merchant: rng.below(options.merchants.max(1)),
        category: kind.category,
        description: format!("{} {}", kind.blurb, name),
        name,
        price_cents,
        stock,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("cannot reach the services at {endpoint}: {source}")]
    Connect { endpoint: String, source: tonic::transport::Error },
    #[error("the services refused {what}: {status}")]
    Refused { what: String, status: tonic::Status },
    #[error("writing {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("no randomness: {0}")]
    Random(String),
}

/// Where the sample accounts' passwords are written (mode 0600).
pub const ACCOUNTS_FILE: &str = "sample-accounts.txt";

const STORE_NAMES: &[&str] =
    &["Northwind Electronics", "Harbour Books & Home", "Summit Outfitters", "Copperline Kitchen"];

fn password() -> Result<String, SampleError> {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).map_err(|e| SampleError::Random(e.to_string()))?;
    Ok(bytes
        .iter()
        .map(|b| char::from(b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"[*b as usize % 55]))
        .collect())
}

fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(v) = format!("Bearer {token}").parse() {
        request.metadata_mut().insert("authorization", v);
    }
    request
}

struct Clients {
    products: ProductServiceClient<Channel>,
    accounts: AccountServiceClient<Channel>,
    operator: OperatorClient<AdminChannel>,
}

/// Registers an account and returns its id and a token.
async fn account(c: &mut Clients, email: &str, name: &str, password: &str) -> Result<(String, String), SampleError> {
    let refused = |status| SampleError::Refused { what: format!("account {email}"), status };
    let session = c
        .accounts
        .register(account_pb::RegisterRequest {
            email: email.into(),
            password: password.into(),
            display_name: name.into(),
        })
        .await
        .map_err(refused)?
        .into_inner();
    Ok((session.account.map(|a| a.id).unwrap_or_default(), session.access_token))
}

async fn login(c: &mut Clients, email: &str, password: &str) -> Result<String, SampleError> {
    let session = c
        .accounts
        .login(account_pb::LoginRequest { email: email.into(), password: password.into() })
        .await
        .map_err(|status| SampleError::Refused { what: format!("login {email}"), status })?
        .into_inner();
    Ok(session.access_token)
}

async fn connect(endpoint: &str, admin: &Admin) -> Result<Clients, SampleError> {
    let channel = Channel::from_shared(endpoint.to_string())
        .map_err(|e| SampleError::Refused {
            what: "the endpoint".into(),
            status: tonic::Status::invalid_argument(e.to_string()),
        })?
        .connect()
        .await
        .map_err(|source| SampleError::Connect { endpoint: endpoint.to_string(), source })?;
    Ok(Clients {
        products: ProductServiceClient::new(channel.clone()).max_decoding_message_size(64 << 20),
        accounts: AccountServiceClient::new(channel),
        operator: admin.operator(),
    })
}

/// Registers an admin (through the operator API) and merchants (granted by
/// that admin); returns the admin's token and each merchant's token.
async fn staff(
    c: &mut Clients,
    admin_email: &str,
    merchant_email: &(dyn Fn(usize) -> String + Sync),
    merchants: usize,
    credentials: &mut Vec<(String, String, &'static str)>,
) -> Result<(String, Vec<String>), SampleError> {
    let admin_password = password()?;
    account(c, admin_email, "Demo Admin", &admin_password).await?;
    c.operator
        .grant_role(admin_pb::GrantRoleRequest {
            email: admin_email.into(),
            role: "admin".into(),
            store_name: String::new(),
        })
        .await
        .map_err(|status| SampleError::Refused { what: "the admin role".into(), status })?;
    let admin = login(c, admin_email, &admin_password).await?;
    credentials.push((admin_email.to_string(), admin_password, "admin"));

    // Merchants sign in again after the grant, for a token with the role.
    let mut tokens = Vec::new();
    for i in 0..merchants.max(1) {
        let email = merchant_email(i);
        let store = STORE_NAMES[i % STORE_NAMES.len()];
        let merchant_password = password()?;
        let (id, _) = account(c, &email, store, &merchant_password).await?;
        c.accounts
            .grant_merchant(with_token(
                account_pb::GrantMerchantRequest { account_id: id, store_name: store.into() },
                &admin,
            ))
            .await
            .map_err(|status| SampleError::Refused { what: format!("merchant {email}"), status })?;
        tokens.push(login(c, &email, &merchant_password).await?);
        credentials.push((email, merchant_password, "merchant"));
    }
    Ok((admin, tokens))
}

/// Products per `create-products` call.
const BATCH: usize = 500;

/// Creates the categories that are missing and `options.products`
/// products, in batches, each merchant creating its own.
async fn catalog(
    c: &mut Clients,
    admin: &str,
    merchants: &[String],
    options: &SampleOptions,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Summary, SampleError> {
    let existing = c
        .products
        .list_categories(pb::ListCategoriesRequest {})
        .await
        .map_err(|status| SampleError::Refused { what: "listing categories".into(), status })?
        .into_inner()
        .categories;
    let mut category_ids: std::collections::HashMap<&str, String> = std::collections::HashMap::new();
    for name in category_names() {
        let id = match existing.iter().find(|c| c.name == name) {
            Some(c) => c.id.clone(),
            None => {
                c.products
                    .create_category(with_token(
                        pb::CreateCategoryRequest { name: name.to_string(), parent_id: None },
                        admin,
                    ))
                    .await
                    .map_err(|status| SampleError::Refused { what: format!("category {name}"), status })?
                    .into_inner()
                    .id
            }
        };
        category_ids.insert(name, id);
    }
    // Each merchant creates its own products, in batches.
    let mut by_merchant: Vec<Vec<pb::CreateProductRequest>> = vec![Vec::new(); merchants.len()];
    for i in 0..options.products {
        let p = product(options, i);
        by_merchant[p.merchant % merchants.len()].push(pb::CreateProductRequest {
            merchant_id: None,
            name: p.name,
            description: p.description,
            price: Some(Money { amount: p.price_cents, currency: "USD".into() }),
            category_id: category_ids.get(p.category).cloned(),
            stock: p.stock,
        });
    }
    let (mut done, total) = (0u64, options.products as u64);
    for (token, items) in merchants.iter().zip(by_merchant) {
        for chunk in items.chunks(BATCH) {
            c.products
                .create_products(with_token(pb::CreateProductsRequest { items: chunk.to_vec() }, token))
                .await
                .map_err(|status| SampleError::Refused { what: "a batch of products".into(), status })?;
            done += chunk.len() as u64;
            progress(done, total);
        }
    }
    Ok(Summary { categories: category_ids.len(), products: options.products })
}

/// The first-start sample: accounts with well-known emails (passwords
/// written to `data_dir/sample-accounts.txt`) and the catalog.
pub async fn load(
    endpoint: &str,
    admin: &Admin,
    options: &SampleOptions,
    data_dir: &Path,
) -> Result<Summary, SampleError> {
    let mut c = connect(endpoint, admin).await?;
    let mut credentials = Vec::new();
    let merchant_email = |i: usize| format!("merchant{}@example.com", i + 1);
    let (admin, merchants) =
        staff(&mut c, "admin@example.com", &merchant_email, options.merchants, &mut credentials).await?;
    let customer_password = password()?;
    account(&mut c, "customer@example.com", "Casey Customer", &customer_password).await?;
    credentials.push(("customer@example.com".to_string(), customer_password, "customer"));
    let summary = catalog(&mut c, &admin, &merchants, options, &|_, _| {}).await?;

    let path = data_dir.join(ACCOUNTS_FILE);
    let text: String =
        credentials.iter().map(|(email, password, role)| format!("{email}  {password}  ({role})\n")).collect();
    write_private(&path, &text).map_err(|source| SampleError::Write { path: path.display().to_string(), source })?;
    Ok(summary)
}

/// More catalog for demos and benchmarks, into a running system: fresh
/// merchant accounts (random emails), the sample categories, and
/// `options.products` products. Reports `(done, total)` as it goes.
pub async fn seed(
    endpoint: &str,
    admin: &Admin,
    options: &SampleOptions,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Summary, SampleError> {
    let mut c = connect(endpoint, admin).await?;
    let run = password()?.to_lowercase();
    let merchant_email = |i: usize| format!("seed-{run}-merchant{}@example.com", i + 1);
    let (admin, merchants) =
        staff(&mut c, &format!("seed-{run}-admin@example.com"), &merchant_email, options.merchants, &mut Vec::new())
            .await?;
    catalog(&mut c, &admin, &merchants, options, progress).await
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    file.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_deterministic_and_varied() {
        let options = SampleOptions::default();
        let a: Vec<_> = (0..20).map(|i| product(&options, i)).collect();
        let b: Vec<_> = (0..20).map(|i| product(&options, i)).collect();
        assert_eq!(a, b);
        let other = SampleOptions { seed: 7, ..SampleOptions::default() };
        assert_ne!(a, (0..20).map(|i| product(&other, i)).collect::<Vec<_>>());
        assert!(a.iter().all(|p| p.price_cents % 100 == 99 && p.stock >= 0));
    }

    /// What the generator promises: about one product in eight sold out,
    /// the rest with 1..=250 units, shelf prices within the kind's range,
    /// merchants among those asked for. The default catalog has both sold
    /// out and in-stock products (the README's `inStock` example needs both).
    #[test]
    fn stock_prices_and_merchants_follow_the_stated_shape() {
        let defaults = SampleOptions::default();
        let catalog: Vec<_> = (0..defaults.products).map(|i| product(&defaults, i)).collect();
        let sold_out = catalog.iter().filter(|p| p.stock == 0).count();
        assert!(sold_out > 0 && sold_out < catalog.len() / 2, "{sold_out} of {} sold out", catalog.len());

        let options = SampleOptions { products: 4000, merchants: 5, seed: 3 };
        let many: Vec<_> = (0..options.products).map(|i| product(&options, i)).collect();
        let sold_out = many.iter().filter(|p| p.stock == 0).count();
        // One in eight is 500; the bounds are far outside chance.
        assert!((many.len() / 12..=many.len() / 6).contains(&sold_out), "{sold_out} of {} sold out", many.len());
        let in_stock: Vec<i64> = many.iter().map(|p| p.stock).filter(|s| *s != 0).collect();
        assert!(in_stock.iter().all(|s| (1..=250).contains(s)));
        assert_eq!((in_stock.iter().min(), in_stock.iter().max()), (Some(&1), Some(&250)));
        for p in &many {
            let kind = KINDS.iter().find(|k| k.category == p.category).unwrap();
            let (lo, hi) = ((kind.price.0 / 100) * 100 + 99, (kind.price.1 / 100) * 100 + 99);
            assert!((lo..=hi).contains(&p.price_cents), "{p:?}");
            assert!(p.merchant < options.merchants);
        }
        let merchants: std::collections::HashSet<usize> = many.iter().map(|p| p.merchant).collect();
        assert_eq!(merchants.len(), options.merchants);
    }
}
