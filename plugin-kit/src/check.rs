//! Holds a component to the plugin contract by decoding its world.

use anyhow::{Context, Result, bail};
use wit_component::DecodedWasm;
use wit_parser::{Resolve, WorldItem, WorldKey};

use crate::Kind;

/// What the check found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    pub kind: Kind,
    /// Every import, by name (`polyscale:plugin/log@1.0.0`,
    /// `wasi:cli/stdout@0.2.9`, …).
    pub imports: Vec<String>,
    /// Every export, by name; besides the plugin's interface a toolchain
    /// may leave its own (componentize-py leaves `exports`, its build-time
    /// initialisation), which the host ignores.
    pub exports: Vec<String>,
}

/// Decodes `component` and checks that it is a plugin of
/// `polyscale:plugin@1.0.0`: it exports exactly one of `pricer` and
/// `validator` (at `@1.0.0`) and imports nothing but `log` and `types`
/// (which has no functions) of that package and, when `allow_wasi`, WASI
/// 0.2 interfaces other than `wasi:sockets` and `wasi:http`.
pub fn check(component: &[u8], allow_wasi: bool) -> Result<Checked> {
    wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
        .validate_all(component)
        .context("invalid WebAssembly")?;
    let (resolve, world) = match wit_component::decode(component).context("decoding the component")? {
        DecodedWasm::Component(resolve, world) => (resolve, world),
        DecodedWasm::WitPackage(..) => bail!("this is a WIT package, not a component"),
    };
    let world = &resolve.worlds[world];

    let mut exports = Vec::new();
    let mut kinds = Vec::new();
    for (key, item) in &world.exports {
        let name = item_name(&resolve, key, item);
        if let Some(kind) = Kind::ALL.into_iter().find(|k| k.export() == name) {
            kinds.push(kind);
        } else if name.starts_with("polyscale:plugin/") {
            bail!("exports {name}, which is not a plugin interface of polyscale:plugin@1.0.0");
        }
        exports.push(name);
    }
    let kind = match kinds.as_slice() {
        [kind] => *kind,
        [] => bail!(
            "exports neither {} nor {} (it exports: {})",
            Kind::Pricing.export(),
            Kind::Validation.export(),
            if exports.is_empty() { "nothing".to_string() } else { exports.join(", ") }
        ),
        _ => bail!("exports both the pricer and the validator; a plugin is one or the other"),
    };

    let mut imports = Vec::new();
    let mut refused = Vec::new();
    for (key, item) in &world.imports {
        let name = item_name(&resolve, key, item);
        let allowed = match item {
            WorldItem::Type { .. } => true,
            WorldItem::Function(_) => false,
            WorldItem::Interface { id, .. } => {
                name == "polyscale:plugin/log@1.0.0"
                    || (name == "polyscale:plugin/types@1.0.0" && resolve.interfaces[*id].functions.is_empty())
                    || (allow_wasi && wasi_allowed(&name))
            }
        };
        if !allowed {
            refused.push(name.clone());
        }
        imports.push(name);
    }
    if !refused.is_empty() {
        bail!(
            "imports {}; a plugin may import only polyscale:plugin/log@1.0.0{}",
            refused.join(", "),
            if allow_wasi { " and WASI 0.2 interfaces other than sockets and HTTP" } else { "" }
        );
    }
    Ok(Checked { kind, imports, exports })
}

/// WASI 0.2 (`wasi:*/*@0.2.x`), except `wasi:sockets` and `wasi:http`.
fn wasi_allowed(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("wasi:") else { return false };
    let Some((package, version)) = rest.split_once('@') else { return false };
    let namespace = package.split('/').next().unwrap_or_default();
    version.starts_with("0.2.") && !matches!(namespace, "sockets" | "http")
}

fn item_name(resolve: &Resolve, key: &WorldKey, item: &WorldItem) -> String {
    match (key, item) {
        (WorldKey::Interface(id), _) => resolve.id_of(*id).unwrap_or_else(|| format!("interface {}", id.index())),
        (WorldKey::Name(name), _) => name.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wasi_02_without_sockets_or_http() {
        assert!(wasi_allowed("wasi:cli/stdout@0.2.9"));
        assert!(wasi_allowed("wasi:io/streams@0.2.12"));
        assert!(!wasi_allowed("wasi:sockets/tcp@0.2.9"));
        assert!(!wasi_allowed("wasi:http/outgoing-handler@0.2.9"));
        assert!(!wasi_allowed("wasi:cli/stdout@0.3.0"));
        assert!(!wasi_allowed("wasi:cli/stdout"));
        assert!(!wasi_allowed("wasix:cli/stdout@0.2.0"));
    }

    #[test]
    fn refuses_what_is_not_a_component() {
        assert!(check(b"\0asm\x01\0\0\0", false).is_err());
        assert!(check(b"not wasm", false).is_err());
    }
}
