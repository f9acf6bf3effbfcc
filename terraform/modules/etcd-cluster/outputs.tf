output "client_url" {
  description = "This member's client URL (https), one of the config's etcd.endpoints."
  value       = "https://${local.this.ip}:${var.client_port}"
}

output "peer_url" {
  description = "This member's peer URL (https)."
  value       = "https://${local.this.ip}:${var.peer_port}"
}

output "instance_id" {
  description = "EC2 instance id of this member."
  value       = aws_instance.member.id
}

output "security_group_id" {
  description = "Security group of this member."
  value       = aws_security_group.member.id
}

output "initial_cluster" {
  description = "The --initial-cluster string every member was started with."
  value       = join(",", [for m in var.members : "${m.name}=https://${m.ip}:${var.peer_port}"])
}
