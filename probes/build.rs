//! Generates the probe report protocol (client for probes, server for
//! controllers). Needs `protoc` (Debian `protobuf-compiler`, installed by
//! `scripts/setup`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/report.proto");
    // The descriptor set serves gRPC reflection on the controllers.
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("report_descriptor.bin"))
        .compile_protos(&["proto/report.proto"], &["proto"])?;
    Ok(())
}
