resource "aws_key_pair" "operator" {
  key_name   = "${local.name}-operator-${local.suffix}"
  public_key = var.ssh_public_key
}

# The orchestrator's interface and address exist before the instance boots, so its
# user-data already knows the public URL and has internet access from the first second.
resource "aws_network_interface" "orchestrator" {
  subnet_id       = aws_subnet.public.id
  security_groups = [aws_security_group.orchestrator.id, aws_security_group.runner_nat.id]
  tags            = { Name = "${local.name}-orchestrator" }
}

resource "aws_eip" "orchestrator" {
  domain            = "vpc"
  network_interface = aws_network_interface.orchestrator.id
  tags              = { Name = "${local.name}-orchestrator" }
  depends_on        = [aws_internet_gateway.this]
}

resource "aws_instance" "orchestrator" {
  #checkov:skip=CKV_AWS_126:Detailed monitoring is not needed for a single orchestrator; /up is the health signal.
  ami                  = data.aws_ami.ubuntu[local.arch[var.orchestrator_instance_type]].id
  instance_type        = var.orchestrator_instance_type
  iam_instance_profile = aws_iam_instance_profile.orchestrator.name
  key_name             = aws_key_pair.operator.key_name
  ebs_optimized        = true
  user_data_base64 = base64gzip(templatefile("${path.module}/templates/orchestrator-user-data.sh.tftpl", {
    region      = var.region
    ssm_prefix  = local.ssm_prefix
    wheel_key   = aws_s3_object.wheel.key
    wheel_name  = var.orchestrator_wheel
    wheelhouse  = aws_s3_object.wheelhouse.key
    public_url  = local.public_url
    bucket      = aws_s3_bucket.results.bucket
    domain_name = var.domain_name
    tls_cert    = trimspace(var.tls_cert)
  }))

  network_interface {
    network_interface_id = aws_network_interface.orchestrator.id
    device_index         = 0
  }

  metadata_options {
    http_endpoint = "enabled"
    http_tokens   = "required"
    # 2 hops: the orchestrator container reaches the instance role through Docker's bridge.
    http_put_response_hop_limit = 2
  }

  root_block_device {
    encrypted   = true
    volume_type = "gp3"
    volume_size = var.root_volume_size_gb
  }

  tags       = { Name = "${local.name}-orchestrator" }
  depends_on = [aws_eip.orchestrator, aws_route_table_association.public, aws_ssm_parameter.secret]

  # The orchestrator and its Postgres history outlive later runs: a newer Ubuntu AMI or a
  # newer master (its wheel, hence the user-data) never replaces it. The master refuses a
  # deployment whose version differs from its own; `cloudbench nuke` then redeploys.
  lifecycle {
    ignore_changes = [ami, user_data_base64]
  }
}

resource "aws_instance" "bastion" {
  #checkov:skip=CKV_AWS_88:The bastion is the one host meant to be reachable; its SG admits SSH only from bastion_ssh_cidr.
  #checkov:skip=CKV_AWS_126:Detailed monitoring is not needed for a bastion.
  #checkov:skip=CKV2_AWS_41:The bastion needs no AWS API access, so it deliberately has no IAM role.
  ami                         = data.aws_ami.ubuntu[local.arch[var.bastion_instance_type]].id
  instance_type               = var.bastion_instance_type
  subnet_id                   = aws_subnet.public.id
  vpc_security_group_ids      = [aws_security_group.bastion.id]
  associate_public_ip_address = true
  key_name                    = aws_key_pair.operator.key_name
  ebs_optimized               = true

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  root_block_device {
    encrypted   = true
    volume_type = "gp3"
    volume_size = 8
  }

  tags       = { Name = "${local.name}-bastion" }
  depends_on = [aws_route_table_association.public]

  lifecycle {
    ignore_changes = [ami]
  }
}
