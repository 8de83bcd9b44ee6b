locals {
  name = "cloudbench-${var.run_id}"
  # One entry per instance: "<alias>-<n>" => {instance_type, alias}.
  runners = merge([
    for t in var.instance_types : {
      for n in range(coalesce(t.instances, var.instances)) : "${t.alias}-${n}" => t
    }
  ]...)
  # Architecture as the EC2 API reports it for the type, not guessed from its name.
  arch = {
    for k, t in data.aws_ec2_instance_type.this :
    k => contains(t.supported_architectures, "arm64") ? "arm64" : "x86_64"
  }
}

data "aws_subnet" "runners" {
  id = var.subnet_id
}

data "aws_ec2_instance_type" "this" {
  for_each      = toset([for t in var.instance_types : t.instance_type])
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

# The runner token lives in a SecureString that only this run's instance role may read.
# Passing it in user-data would expose it to anyone allowed ec2:DescribeInstanceAttribute
# and to every process on the instance via IMDS; an SSM read needs the role's credentials.
# (It still sits in this stack's local state file, which the master keeps private.)
resource "aws_ssm_parameter" "runner_token" {
  #checkov:skip=CKV_AWS_337:The AWS-managed aws/ssm key suffices; a customer key per run would outlive the run (7-day minimum deletion window).
  name  = "/cloudbench/runs/${var.run_id}/runner-token"
  type  = "SecureString"
  value = var.runner_token
}

data "aws_iam_policy_document" "ec2_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

# The ruby-bench suite the master ships (--ruby-bench), so runners never clone it.
resource "aws_s3_object" "ruby_bench" {
  count  = var.ship_ruby_bench ? 1 : 0
  bucket = var.bucket
  key    = "runs/${var.run_id}/ruby-bench.tar.gz"
  source = "${path.module}/ruby-bench.tar.gz"
  etag   = filemd5("${path.module}/ruby-bench.tar.gz")

  lifecycle {
    precondition {
      condition     = var.bucket != ""
      error_message = "ship_ruby_bench needs bucket (the meta stack's bucket output)."
    }
  }
}

# The master's wheel and its hash-pinned dependencies, one tar per architecture the run
# uses (the master packs wheelhouse-<arch>.tar here): runners install offline from it.
resource "aws_s3_object" "wheelhouse" {
  for_each = toset(values(local.arch))
  bucket   = var.bucket
  key      = "runs/${var.run_id}/wheelhouse-${each.key}.tar"
  source   = "${path.module}/wheelhouse-${each.key}.tar"
  # source_hash, not etag: S3 uploads a file this large in parts, and a multipart ETag
  # never equals the file's MD5 (etag would plan a change on every apply).
  source_hash = fileexists("${path.module}/wheelhouse-${each.key}.tar") ? filemd5("${path.module}/wheelhouse-${each.key}.tar") : null

  lifecycle {
    precondition {
      condition     = var.bucket != ""
      error_message = "The runners' wheelhouse needs bucket (the meta stack's bucket output)."
    }
    precondition {
      condition     = contains(var.wheelhouse_arches, each.key)
      error_message = "No wheelhouse for ${each.key} instance types: add ${each.key} to CLOUDBENCH_AWS_VM_ARCHES."
    }
  }
}

# The run's benchmark image, built once by the master for its architecture (the master
# saves benchmark-<sha256>.tar here): runners of that architecture load it, its sha256
# checked, instead of building it.
resource "aws_s3_object" "benchmark_image" {
  count  = var.benchmark_image.file != "" ? 1 : 0
  bucket = var.bucket
  key    = "runs/${var.run_id}/${var.benchmark_image.file}"
  source = "${path.module}/${var.benchmark_image.file}"
  # No etag: the name carries the archive's sha256, so new bytes are a new object.

  lifecycle {
    precondition {
      condition     = var.bucket != ""
      error_message = "benchmark_image needs bucket (the meta stack's bucket output)."
    }
  }
}

data "aws_iam_policy_document" "runner" {
  statement {
    sid       = "ReadRunnerToken"
    actions   = ["ssm:GetParameter"]
    resources = [aws_ssm_parameter.runner_token.arn]
  }

  statement {
    sid       = "ReadWheelhouse"
    actions   = ["s3:GetObject"]
    resources = [for o in aws_s3_object.wheelhouse : "arn:aws:s3:::${o.bucket}/${o.key}"]
  }

  dynamic "statement" {
    for_each = aws_s3_object.benchmark_image
    content {
      sid       = "ReadBenchmarkImage"
      actions   = ["s3:GetObject"]
      resources = ["arn:aws:s3:::${statement.value.bucket}/${statement.value.key}"]
    }
  }

  dynamic "statement" {
    for_each = aws_s3_object.ruby_bench
    content {
      sid       = "ReadRubyBench"
      actions   = ["s3:GetObject"]
      resources = ["arn:aws:s3:::${statement.value.bucket}/${statement.value.key}"]
    }
  }
}

resource "aws_iam_role" "runner" {
  name               = "${local.name}-runner"
  path               = "/cloudbench/"
  assume_role_policy = data.aws_iam_policy_document.ec2_assume.json
}

resource "aws_iam_role_policy" "runner" {
  name   = "read-runner-token"
  role   = aws_iam_role.runner.id
  policy = data.aws_iam_policy_document.runner.json
}

resource "aws_iam_instance_profile" "runner" {
  name = "${local.name}-runner"
  path = "/cloudbench/"
  role = aws_iam_role.runner.name
}

resource "aws_security_group" "runner" {
  name        = "${local.name}-runner"
  description = "cloudbench runners of run ${var.run_id}: no inbound, web and orchestrator outbound"
  vpc_id      = data.aws_subnet.runners.vpc_id

  egress {
    description = "HTTPS: packages, images, gems, S3 uploads, SSM"
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }

  egress {
    description = "HTTP: distribution package mirrors"
    from_port   = 80
    to_port     = 80
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }

  egress {
    description = "The orchestrator, wherever it runs"
    from_port   = var.orchestrator_port
    to_port     = var.orchestrator_port
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "aws_instance" "runner" {
  #checkov:skip=CKV_AWS_88:Runners need outbound internet and the run has no NAT gateway; their SG admits no inbound traffic.
  #checkov:skip=CKV_AWS_126:Detailed monitoring would bill per instance for metrics the benchmark collects itself.
  for_each                             = local.runners
  ami                                  = data.aws_ami.ubuntu[local.arch[each.value.instance_type]].id
  instance_type                        = each.value.instance_type
  subnet_id                            = coalesce(each.value.subnet_id, var.subnet_id)
  vpc_security_group_ids               = [aws_security_group.runner.id]
  associate_public_ip_address          = true
  iam_instance_profile                 = aws_iam_instance_profile.runner.name
  ebs_optimized                        = true
  instance_initiated_shutdown_behavior = "terminate"
  user_data_replace_on_change          = true
  user_data = templatefile("${path.module}/templates/runner-user-data.sh.tftpl", {
    max_lifetime_minutes = var.max_lifetime_minutes
    orchestrator_url     = trimsuffix(var.orchestrator_url, "/")
    tls_cert             = trimspace(var.orchestrator_tls_cert)
    tls_name             = "cloudbench-orchestrator" # the certificate's name (platform/tls.py)
    region               = var.region
    token_parameter      = aws_ssm_parameter.runner_token.name
    run_id               = var.run_id
    instance_type        = each.value.instance_type
    alias                = each.value.alias
    debug                = var.debug ? "true" : "false"
    heartbeat_interval   = var.heartbeat_interval
    bucket               = var.bucket
    ruby_bench_key       = try(aws_s3_object.ruby_bench[0].key, "")
    wheelhouse_key       = aws_s3_object.wheelhouse[local.arch[each.value.instance_type]].key
    image_key            = local.arch[each.value.instance_type] == var.benchmark_image.arch ? try(aws_s3_object.benchmark_image[0].key, "") : ""
    ruby_image_digest    = local.arch[each.value.instance_type] == var.benchmark_image.arch ? var.benchmark_image.ruby_image_digest : ""
  })

  # capacity "spot" (issue 27): a one-time spot instance, terminated when EC2 reclaims it
  # (its runner sees the notice in IMDS first and fails its task `preempted`).
  dynamic "instance_market_options" {
    for_each = each.value.capacity == "spot" ? [each.value] : []
    content {
      market_type = "spot"
      spot_options {
        spot_instance_type             = "one-time"
        instance_interruption_behavior = "terminate"
        max_price                      = instance_market_options.value.max_price == null ? null : tostring(instance_market_options.value.max_price)
      }
    }
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  root_block_device {
    encrypted             = true
    volume_type           = "gp3"
    volume_size           = var.root_volume_size_gb
    delete_on_termination = true
  }

  # default_tags do not reach volumes created with the instance.
  volume_tags = { Project = "cloudbench", RunId = var.run_id }
  tags        = { Name = "${local.name}-${each.key}", Alias = each.value.alias }

  # An instance EC2 keeps `pending` would hold the apply (and the run) for the provider's
  # default 10 min: the master's --boot-timeout bounds it, as it bounds calling in.
  timeouts {
    create = "${var.boot_timeout_seconds}s"
  }
}
