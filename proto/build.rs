//! Compiles the `.proto` contracts with protox (pure Rust, so no `protoc`
//! is needed on the machine) and generates tonic clients and servers.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "polyscale/types/v1/types.proto",
    "polyscale/product/v1/product.proto",
    "polyscale/account/v1/account.proto",
    "polyscale/order/v1/order.proto",
    "polyscale/plugin/v1/plugin.proto",
    "polyscale/admin/v1/components.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let fds = protox::compile(PROTOS, ["."])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("descriptors.bin"), prost::Message::encode_to_vec(&fds))?;
    tonic_prost_build::configure().compile_fds(fds)?;
    Ok(())
}
