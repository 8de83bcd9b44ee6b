output "orchestrator_url" {
  description = "Public URL of the orchestrator (CLI, dashboard and runners outside the VPC)."
  value       = local.public_url
}

output "orchestrator_private_url" {
  description = "URL of the orchestrator from inside the VPC, for runners launched in subnet_id."
  value       = local.private_url
}

output "runner_nat_security_group_id" {
  description = "Security group of the orchestrator to which cloudbench run adds each run's Azure NAT address (on the orchestrator URL's port) while the run lasts."
  value       = aws_security_group.runner_nat.id
}

output "orchestrator_tls_certificate" {
  description = "Certificate (PEM) the orchestrator serves at its addresses; clients pin it."
  value       = var.tls_cert
}

output "admin_token" {
  description = "Admin token of the orchestrator."
  value       = var.admin_token
  sensitive   = true
}

output "runner_token" {
  description = "Token runners present to the orchestrator."
  value       = var.runner_token
  sensitive   = true
}

output "bucket" {
  description = "Name of the private results bucket."
  value       = aws_s3_bucket.results.bucket
}

output "region" {
  description = "AWS region of this deployment."
  value       = var.region
}

output "vpc_id" {
  description = "VPC the provider stacks launch runners into."
  value       = aws_vpc.this.id
}

output "subnet_id" {
  description = "Public subnet the provider stacks launch runners into."
  value       = aws_subnet.public.id
}

output "zone_subnets" {
  description = "Public subnet per availability zone (subnet_id's zone included): the master launches each runner type in a zone that offers it."
  value       = merge({ for z, s in aws_subnet.zone : z => s.id }, { (local.public_zone) = aws_subnet.public.id })
}

output "bastion_ssh_command" {
  description = "SSH into the orchestrator through the bastion."
  value       = "ssh -J ubuntu@${aws_instance.bastion.public_ip} ubuntu@${aws_network_interface.orchestrator.private_ip}"
}
