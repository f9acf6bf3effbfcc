//! Generates the controller-to-controller peer protocol (`proto/peer.proto`)
//! and the operator API (`proto/operator.proto`).
//! Needs `protoc` (Debian `protobuf-compiler`, installed by `scripts/setup`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/peer.proto");
    println!("cargo:rerun-if-changed=proto/operator.proto");
    // The descriptor set serves gRPC reflection (`grpcurl list`).
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("controller_descriptor.bin"))
        .compile_protos(&["proto/peer.proto", "proto/operator.proto"], &["proto"])?;
    Ok(())
}
