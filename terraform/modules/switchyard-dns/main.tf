# The hosted zone and the records' initial state. After creation the
# controllers own the weights and the writer records' values: Terraform
# ignores changes to them, so an apply never undoes a failover.

resource "aws_route53_zone" "this" {
  #checkov:skip=CKV2_AWS_38:DNSSEC is optional (dnssec_kms_key_arn): it needs a KMS key made for it and a DS record at the parent, which this module cannot add.
  #checkov:skip=CKV2_AWS_39:Query logging is optional (query_log_group_arn): it needs a log group in us-east-1 with a resource policy, made outside this module.
  count         = var.create_zone ? 1 : 0
  name          = trimsuffix(var.zone_name, ".")
  comment       = "Switchyard: weighted service records and database writer records"
  force_destroy = var.force_destroy
  tags          = var.tags
}

resource "aws_route53_query_log" "this" {
  count                    = var.create_zone && var.query_log_group_arn != null ? 1 : 0
  zone_id                  = aws_route53_zone.this[0].zone_id
  cloudwatch_log_group_arn = var.query_log_group_arn
}

resource "aws_route53_key_signing_key" "this" {
  count                      = var.create_zone && var.dnssec_kms_key_arn != null ? 1 : 0
  name                       = "switchyard"
  hosted_zone_id             = aws_route53_zone.this[0].zone_id
  key_management_service_arn = var.dnssec_kms_key_arn
}

resource "aws_route53_hosted_zone_dnssec" "this" {
  count          = var.create_zone && var.dnssec_kms_key_arn != null ? 1 : 0
  hosted_zone_id = aws_route53_key_signing_key.this[0].hosted_zone_id
}

locals {
  zone_id = var.create_zone ? aws_route53_zone.this[0].zone_id : var.zone_id
  weights = { for r in var.regions : r.name => r.weight }

  # One weighted record set per (service, region), keyed "service/region".
  weighted = merge([for s in var.services : {
    for e in s.endpoints : "${s.name}/${e.region}" => {
      record = s.record
      type   = s.type
      ttl    = s.ttl
      region = e.region
      value  = e.value
    }
  }]...)
}

resource "aws_route53_record" "weighted" {
  for_each = local.weighted

  zone_id        = local.zone_id
  name           = each.value.record
  type           = each.value.type
  ttl            = each.value.ttl
  records        = [each.value.value]
  set_identifier = each.value.region

  weighted_routing_policy {
    weight = local.weights[each.value.region]
  }

  lifecycle {
    # The controllers set weights (and drift-correct them); records and TTL
    # are theirs too once the zone is live.
    ignore_changes = [weighted_routing_policy, records, ttl]

    precondition {
      condition     = contains(keys(local.weights), each.value.region)
      error_message = "Endpoint region ${each.value.region} of ${each.value.record} is not in var.regions."
    }
  }
}

resource "aws_route53_record" "writer" {
  for_each = { for w in var.writer_records : w.record => w }

  zone_id = local.zone_id
  name    = each.value.record
  type    = each.value.type
  ttl     = each.value.ttl
  records = [each.value.value]

  lifecycle {
    # Every failover and switchover moves the writer record to the new
    # primary; Terraform only creates it.
    ignore_changes = [records, ttl]
  }
}
