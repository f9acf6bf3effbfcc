//! Generates the probe report protocol (client for probes, server for
//! controllers). Needs `protoc` (Debian `protobuf-compiler`, installed by
//! `scripts/setup`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/report.proto");
    tonic_prost_build::configure().compile_protos(&["proto/report.proto"], &["proto"])?;
    Ok(())
}
