//! Compiles the gRPC protos with the vendored protoc (no system protobuf needed).

/// Every proto compiled into the crate (client and server code for each service).
const PROTOS: &[&str] = &["proto/slatefs.proto", "proto/csi.proto", "proto/cluster.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    tonic_prost_build::configure().compile_protos(PROTOS, &["proto"])?;
    Ok(())
}
