output "zone_id" {
  description = "The hosted zone's id (the config's dns.hosted_zone_id)."
  value       = module.dns.zone_id
}

output "name_servers" {
  description = "Name servers to delegate the domain to at its parent."
  value       = module.dns.name_servers
}

output "etcd_endpoints" {
  description = "etcd client URLs, one per region (the config's etcd.endpoints)."
  value       = [module.etcd_us_east.client_url, module.etcd_eu_west.client_url, module.etcd_ap_south.client_url]
}

output "controllers" {
  description = "Each region's controller gRPC address (host:port), keyed by controller id."
  value = {
    (module.region_us_east.controller_id)  = module.region_us_east.controller_address
    (module.region_eu_west.controller_id)  = module.region_eu_west.controller_address
    (module.region_ap_south.controller_id) = module.region_ap_south.controller_address
  }
}

output "metrics_targets" {
  description = "Prometheus scrape targets per region (controller and probe)."
  value = {
    us-east  = module.region_us_east.metrics_targets
    eu-west  = module.region_eu_west.metrics_targets
    ap-south = module.region_ap_south.metrics_targets
  }
}

output "config" {
  description = "The switchyard.toml every host got: the controllers' addresses for `switchyard status --config` on an operator's machine, which also needs an operator token and, under [tls], a client certificate."
  value       = module.region_us_east.config
}
