output "controller_id" {
  description = "Id of this region's controller in the config (ctl-<region>)."
  value       = local.controller_id
}

output "controller_instance_id" {
  description = "EC2 instance id of the controller."
  value       = aws_instance.controller.id
}

output "probe_instance_id" {
  description = "EC2 instance id of the probe."
  value       = aws_instance.probe.id
}

output "controller_address" {
  description = "host:port of the controller's gRPC API (for `switchyard status` and the probes)."
  value       = "${local.this.controller_ip}:${var.cluster.grpc_port}"
}

output "metrics_targets" {
  description = "Prometheus scrape targets: controller (job switchyard-controller) and probe (job switchyard-probe)."
  value = {
    controller = "${local.this.controller_ip}:${var.cluster.metrics_port}"
    probe      = "${local.this.probe_ip}:${var.cluster.probe_metrics_port}"
  }
}

output "controller_security_group_id" {
  description = "Security group of the controller."
  value       = aws_security_group.controller.id
}

output "probe_security_group_id" {
  description = "Security group of the probe."
  value       = aws_security_group.probe.id
}

output "controller_role_arn" {
  description = "IAM role of the controller's instance profile."
  value       = aws_iam_role.controller.arn
}

output "config" {
  description = "The rendered switchyard.toml every host of the cluster reads (the same in every region)."
  value       = local.config
}
