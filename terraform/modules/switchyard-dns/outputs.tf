output "zone_id" {
  description = "Hosted zone id (without /hostedzone/): the config's dns.hosted_zone_id and the scope of the controllers' IAM policy."
  value       = local.zone_id
}

output "zone_arn" {
  description = "ARN of the created hosted zone (null when an existing zone is used)."
  value       = var.create_zone ? aws_route53_zone.this[0].arn : null
}

output "name_servers" {
  description = "Name servers of the created zone, to delegate to at the parent (empty for an existing zone)."
  value       = var.create_zone ? aws_route53_zone.this[0].name_servers : []
}

output "weighted_records" {
  description = "The weighted record sets created, keyed service/region: name, type and SetIdentifier."
  value       = { for k, r in aws_route53_record.weighted : k => { name = r.name, type = r.type, set_identifier = r.set_identifier } }
}

output "writer_records" {
  description = "The writer records created (FQDNs)."
  value       = [for r in aws_route53_record.writer : r.fqdn]
}
