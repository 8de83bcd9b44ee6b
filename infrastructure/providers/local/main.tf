# The local provider launches nothing in Terraform: the master starts runners itself. The
# stack exists so that every provider goes through the same init/apply/output path, and it
# fails early (at plan time) when no container engine answers.
data "external" "engine" {
  program = ["sh", "${path.module}/scripts/check-engine.sh", var.engine]
}
