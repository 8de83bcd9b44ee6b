locals {
  name = var.name_prefix
  tls  = var.domain_name != ""
  # Chosen once per deployment by the master (kept in its working copy): bucket names are
  # global and must not collide with an earlier deployment's bucket still being emptied.
  suffix = var.suffix
  # The orchestrator listens here inside compose; also the port runners in the VPC use.
  app_port = 8000
  # The orchestrator serves HTTPS only, with the master's self-signed certificate (which
  # every client pins); a domain name puts Caddy with an ACME certificate in front.
  public_url = (
    local.tls ? "https://${var.domain_name}" : "https://${aws_eip.orchestrator.public_ip}:${local.app_port}"
  )
  private_url = "https://${aws_network_interface.orchestrator.private_ip}:${local.app_port}"
  ssm_prefix  = "/cloudbench/meta/${local.suffix}"
  secrets = {
    admin-token       = var.admin_token
    runner-token      = var.runner_token
    postgres-password = var.postgres_password
    tls-key           = var.tls_key
  }
  # Architecture from the EC2 API, not guessed from the type's name.
  arch = {
    for k, t in data.aws_ec2_instance_type.this :
    k => contains(t.supported_architectures, "arm64") ? "arm64" : "x86_64"
  }
}

# An explicit allow-list of zone names keeps the choice stable when AWS adds zones.
data "aws_availability_zones" "available" {
  state = "available"
  filter {
    name   = "zone-name"
    values = var.availability_zone != null ? [var.availability_zone] : [for z in ["a", "b", "c"] : "${var.region}${z}"]
  }
}

# Every zone of the region gets a public subnet: each runner type goes to a zone that
# offers it (the master asks DescribeInstanceTypeOfferings). Subnets cost nothing.
data "aws_availability_zones" "runners" {
  #checkov:skip=CKV_AWS_394:Only zone-type availability-zone in state available are kept; an opt-in zone appears only once the account opted in, and then runners may use it.
  state = "available"
  filter {
    name   = "zone-type"
    values = ["availability-zone"]
  }
}

locals {
  public_zone = data.aws_availability_zones.available.names[0]
  # Zone <region>X gets the VPC's /20 number 1 + position of X in a..o (stable when AWS
  # adds zones); number 0 is public_subnet_cidr's (the default 10.42.0.0/20).
  zone_letters = split("", "abcdefghijklmno")
  zone_subnets = {
    for z in data.aws_availability_zones.runners.names :
    z => cidrsubnet(var.vpc_cidr, 4, 1 + index(local.zone_letters, substr(z, -1, 1)))
    if z != local.public_zone && contains(local.zone_letters, substr(z, -1, 1))
  }
}

data "aws_ec2_instance_type" "this" {
  for_each      = toset([var.orchestrator_instance_type, var.bastion_instance_type])
  instance_type = each.value
}

data "aws_ami" "ubuntu" {
  for_each    = toset(values(local.arch))
  most_recent = true
  owners      = ["099720109477"] # Canonical

  filter {
    name   = "name"
    values = ["ubuntu/images/hvm-ssd*/ubuntu-noble-24.04-*-server-*"]
  }

  filter {
    name   = "architecture"
    values = [each.value]
  }

  filter {
    name   = "virtualization-type"
    values = ["hvm"]
  }
}

# --- network -------------------------------------------------------------------------

resource "aws_vpc" "this" {
  #checkov:skip=CKV2_AWS_11:Flow logs would cost more than the short-lived benchmark traffic is worth; no sensitive data crosses this VPC.
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true
  tags                 = { Name = "${local.name}-vpc" }
}

# Strip every rule from the default security group so nothing uses it by accident.
resource "aws_default_security_group" "this" {
  vpc_id = aws_vpc.this.id
  tags   = { Name = "${local.name}-default-deny" }
}

resource "aws_subnet" "public" {
  vpc_id                  = aws_vpc.this.id
  cidr_block              = var.public_subnet_cidr
  availability_zone       = local.public_zone
  map_public_ip_on_launch = false
  tags                    = { Name = "${local.name}-public" }
}

resource "aws_subnet" "zone" {
  for_each                = local.zone_subnets
  vpc_id                  = aws_vpc.this.id
  cidr_block              = each.value
  availability_zone       = each.key
  map_public_ip_on_launch = false
  tags                    = { Name = "${local.name}-${each.key}" }
}

resource "aws_internet_gateway" "this" {
  vpc_id = aws_vpc.this.id
  tags   = { Name = "${local.name}-igw" }
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.this.id
  tags   = { Name = "${local.name}-public" }

  route {
    cidr_block = "0.0.0.0/0"
    gateway_id = aws_internet_gateway.this.id
  }
}

resource "aws_route_table_association" "public" {
  subnet_id      = aws_subnet.public.id
  route_table_id = aws_route_table.public.id
}

resource "aws_route_table_association" "zone" {
  for_each       = aws_subnet.zone
  subnet_id      = each.value.id
  route_table_id = aws_route_table.public.id
}

# --- storage -------------------------------------------------------------------------

resource "aws_s3_bucket" "results" {
  #checkov:skip=CKV_AWS_18:Access logging needs a second bucket per deployment; access is limited to the orchestrator role.
  #checkov:skip=CKV_AWS_144:Benchmark results are reproducible; cross-region replication is not worth its cost.
  #checkov:skip=CKV2_AWS_62:Nothing consumes bucket events.
  #checkov:skip=CKV_AWS_21:Results are written once; versioning would only keep garbage that nuke must then delete.
  #checkov:skip=CKV_AWS_145:SSE-KMS with a customer key would outlive the deployment (7-day minimum deletion window); SSE-S3 encrypts at rest.
  bucket        = "${local.name}-results-${local.suffix}"
  force_destroy = true
  tags          = { Name = "${local.name}-results" }
}

resource "aws_s3_bucket_public_access_block" "results" {
  bucket                  = aws_s3_bucket.results.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "results" {
  bucket = aws_s3_bucket.results.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "results" {
  bucket = aws_s3_bucket.results.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "results" {
  bucket = aws_s3_bucket.results.id
  rule {
    id     = "expire-results"
    status = "Enabled"
    filter {}
    expiration {
      days = var.results_expiry_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

# The master's own wheel: the orchestrator installs it at boot and serves it to runners,
# so orchestrator, runners and master run one version.
resource "aws_s3_object" "wheel" {
  bucket = aws_s3_bucket.results.id
  key    = "dist/${var.orchestrator_wheel}"
  source = "${path.module}/dist/${var.orchestrator_wheel}"
  etag   = filemd5("${path.module}/dist/${var.orchestrator_wheel}")
}

# The orchestrator's wheelhouse: the master's wheel and its hash-pinned dependencies for
# the orchestrator's architecture (the master packs dist/wheelhouse-<arch>.tar here); the
# orchestrator installs it with pip --no-index --require-hashes.
resource "aws_s3_object" "wheelhouse" {
  bucket = aws_s3_bucket.results.id
  key    = "dist/wheelhouse-${local.arch[var.orchestrator_instance_type]}.tar"
  source = "${path.module}/dist/wheelhouse-${local.arch[var.orchestrator_instance_type]}.tar"
  # source_hash, not etag: S3 uploads a file this large in parts, and a multipart ETag
  # never equals the file's MD5 (etag would plan a change on every apply).
  source_hash = fileexists("${path.module}/dist/wheelhouse-${local.arch[var.orchestrator_instance_type]}.tar") ? filemd5("${path.module}/dist/wheelhouse-${local.arch[var.orchestrator_instance_type]}.tar") : null

  lifecycle {
    precondition {
      condition     = contains(var.wheelhouse_arches, local.arch[var.orchestrator_instance_type])
      error_message = "No wheelhouse for the orchestrator's architecture: add it to CLOUDBENCH_AWS_VM_ARCHES."
    }
  }
}

# --- secrets -------------------------------------------------------------------------

# SecureString parameters, read by the orchestrator's user-data through its role, so the
# tokens never appear in user-data (readable by anyone with ec2:DescribeInstanceAttribute).
resource "aws_ssm_parameter" "secret" {
  #checkov:skip=CKV_AWS_337:The AWS-managed aws/ssm key suffices; a customer key would outlive the deployment.
  # The values are sensitive variables: the names alone decide the instances.
  for_each = toset(["admin-token", "runner-token", "postgres-password", "tls-key"])
  name     = "${local.ssm_prefix}/${each.key}"
  type     = "SecureString"
  value    = local.secrets[each.key]
}

# --- IAM -----------------------------------------------------------------------------

data "aws_iam_policy_document" "ec2_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "orchestrator" {
  statement {
    sid       = "ListResultsBucket"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [aws_s3_bucket.results.arn]
  }
  statement {
    sid       = "ReadWriteResults"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    resources = ["${aws_s3_bucket.results.arn}/*"]
  }
  statement {
    sid       = "ReadOwnSecrets"
    actions   = ["ssm:GetParameter", "ssm:GetParameters"]
    resources = [for p in aws_ssm_parameter.secret : p.arn]
  }
}

resource "aws_iam_role" "orchestrator" {
  name               = "${local.name}-orchestrator-${local.suffix}"
  path               = "/cloudbench/"
  assume_role_policy = data.aws_iam_policy_document.ec2_assume.json
}

resource "aws_iam_role_policy" "orchestrator" {
  name   = "results-bucket-and-secrets"
  role   = aws_iam_role.orchestrator.id
  policy = data.aws_iam_policy_document.orchestrator.json
}

resource "aws_iam_instance_profile" "orchestrator" {
  name = "${local.name}-orchestrator-${local.suffix}"
  path = "/cloudbench/"
  role = aws_iam_role.orchestrator.name
}

# --- security groups -----------------------------------------------------------------

resource "aws_security_group" "bastion" {
  name        = "${local.name}-bastion"
  description = "SSH bastion of the cloudbench deployment"
  vpc_id      = aws_vpc.this.id
  tags        = { Name = "${local.name}-bastion" }

  ingress {
    description = "SSH from the operator network"
    from_port   = 22
    to_port     = 22
    protocol    = "tcp"
    cidr_blocks = [var.bastion_ssh_cidr]
  }

  egress {
    description = "SSH onward to instances in the VPC"
    from_port   = 22
    to_port     = 22
    protocol    = "tcp"
    cidr_blocks = [var.vpc_cidr]
  }
}

# Runners outside the VPC (Azure) reach the orchestrator's public address from their run's
# NAT address, which exists only once that run's stack is applied. `cloudbench run` adds one
# ingress rule per run to this group (boto3; description "cloudbench run <id>: azure
# runners (NAT)", the orchestrator URL's port, the NAT address /32) before the run's VMs
# boot, and revokes it when the run ends. The group has no ingress blocks, so Terraform
# manages none of its ingress rules and re-applying meta for another run keeps them;
# `egress = []`: nothing beyond what the orchestrator group allows.
resource "aws_security_group" "runner_nat" {
  name        = "${local.name}-runner-nat"
  description = "cloudbench orchestrator: per-run allow-list entries for runners outside the VPC (added by cloudbench run)"
  vpc_id      = aws_vpc.this.id
  egress      = []
  tags        = { Name = "${local.name}-runner-nat" }
}

resource "aws_security_group" "orchestrator" {
  name        = "${local.name}-orchestrator"
  description = "cloudbench orchestrator: HTTP(S) from allowed networks, SSH via the bastion"
  vpc_id      = aws_vpc.this.id
  tags        = { Name = "${local.name}-orchestrator" }

  ingress {
    description = "Orchestrator API (HTTPS only) from allowed networks and runners in the VPC"
    from_port   = local.app_port
    to_port     = local.app_port
    protocol    = "tcp"
    cidr_blocks = distinct(concat(var.allowed_http_cidrs, [var.vpc_cidr]))
  }

  dynamic "ingress" {
    for_each = local.tls ? [80, 443] : []
    content {
      description = "TLS proxy (80 serves the ACME challenge and redirects)"
      from_port   = ingress.value
      to_port     = ingress.value
      protocol    = "tcp"
      cidr_blocks = var.allowed_http_cidrs
    }
  }

  ingress {
    description     = "SSH only from the bastion"
    from_port       = 22
    to_port         = 22
    protocol        = "tcp"
    security_groups = [aws_security_group.bastion.id]
  }

  egress {
    description = "HTTPS out: packages, container images, S3, SSM"
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }

  egress {
    description = "HTTP out: Ubuntu package mirrors"
    from_port   = 80
    to_port     = 80
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }
}
