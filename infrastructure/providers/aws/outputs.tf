output "instances" {
  description = "Launched runners by key (<alias>-<n>): instance id, type, alias, public and private IP, availability zone."
  value = {
    for k, i in aws_instance.runner : k => {
      id            = i.id
      instance_type = i.instance_type
      alias         = local.runners[k].alias
      public_ip     = i.public_ip
      private_ip    = i.private_ip
      zone          = i.availability_zone
    }
  }
}

output "architectures" {
  description = "CPU architecture the EC2 API reports for each instance type, as used to pick the AMI."
  value       = local.arch
}

output "runner_token_parameter" {
  description = "Name of the SSM SecureString holding the runner token."
  value       = aws_ssm_parameter.runner_token.name
}
