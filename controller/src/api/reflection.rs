//! gRPC server reflection (`grpc.reflection.v1`): what every service on a
//! controller's port offers, so that `grpcurl` and similar tools can call
//! the operator API and the health service without the `.proto` files.
//! It tells the schema only; every operator call is still authenticated,
//! and under `[tls]` only a client with a certificate of the cluster's CA
//! gets as far as asking.

/// The encoded descriptors of the peer and operator protocols.
const CONTROLLER_DESCRIPTORS: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/controller_descriptor.bin"));

/// The reflection service, knowing the operator, peer, probe report and
/// health protocols.
pub fn service() -> Result<
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
    tonic_reflection::server::Error,
> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(CONTROLLER_DESCRIPTORS)
        .register_encoded_file_descriptor_set(switchyard_probes::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
}
