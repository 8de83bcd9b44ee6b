locals {
  name = "cloudbench-${var.run_id}"
  # azurerm has no default tags: every resource names these, `cloudbench nuke` sweeps by them.
  tags = { Project = "cloudbench", RunId = var.run_id, Stack = "providers/azure" }
  # One entry per VM: "<alias>-<n>" => {instance_type, alias, architecture, premium_io}.
  runners = merge([
    for t in var.instance_types : {
      for n in range(coalesce(t.instances, var.instances)) : "${t.alias}-${n}" => t
    }
  ]...)
  # Canonical's Ubuntu 24.04 LTS; the Arm64 SKU for sizes the Resource SKUs API reports as
  # Arm64 (the master passes CpuArchitectureType), never guessed from the size's name, and
  # the generation-1 image for x64 sizes without Hyper-V generation 2 (HyperVGenerations).
  image_sku = { x64 = "server", Arm64 = "server-arm64", "x64-gen1" = "server-gen1" }
  # VM names: at most 64 characters (computer names, at most 15, come from a hash below).
  vm_name = { for k, _ in local.runners : k => substr("${local.name}-${k}", 0, 64) }
}

data "azurerm_client_config" "current" {}

resource "azurerm_resource_group" "run" {
  name     = local.name
  location = var.location
  tags     = local.tags
}

resource "azurerm_virtual_network" "run" {
  name                = "${local.name}-vnet"
  location            = var.location
  resource_group_name = azurerm_resource_group.run.name
  address_space       = [var.address_space]
  tags                = local.tags
}

resource "azurerm_subnet" "runners" {
  name                 = "runners"
  resource_group_name  = azurerm_resource_group.run.name
  virtual_network_name = azurerm_virtual_network.run.name
  address_prefixes     = [cidrsubnet(var.address_space, 24 - tonumber(split("/", var.address_space)[1]), 0)]
  # Key Vault admits the runners through this endpoint and nothing else from the network.
  service_endpoints = ["Microsoft.KeyVault"]
  # Outbound goes through the NAT gateway; Azure's implicit default outbound is retired.
  default_outbound_access_enabled = false
}

# Runners have no public address; their outbound traffic (packages, the orchestrator) leaves
# through one NAT gateway, so nothing can connect to them from the internet.
resource "azurerm_public_ip" "nat" {
  name                = "${local.name}-nat"
  location            = var.location
  resource_group_name = azurerm_resource_group.run.name
  allocation_method   = "Static"
  sku                 = "Standard"
  tags                = local.tags
}

resource "azurerm_nat_gateway" "run" {
  name                = "${local.name}-nat"
  location            = var.location
  resource_group_name = azurerm_resource_group.run.name
  sku_name            = "Standard"
  tags                = local.tags
}

resource "azurerm_nat_gateway_public_ip_association" "run" {
  nat_gateway_id       = azurerm_nat_gateway.run.id
  public_ip_address_id = azurerm_public_ip.nat.id
}

resource "azurerm_subnet_nat_gateway_association" "runners" {
  subnet_id      = azurerm_subnet.runners.id
  nat_gateway_id = azurerm_nat_gateway.run.id
}

resource "azurerm_network_security_group" "runners" {
  name                = "${local.name}-runners"
  location            = var.location
  resource_group_name = azurerm_resource_group.run.name
  tags                = local.tags

  dynamic "security_rule" {
    for_each = var.ssh_cidr == "" ? [] : [var.ssh_cidr]
    content {
      name                       = "ssh-from-admin"
      priority                   = 100
      direction                  = "Inbound"
      access                     = "Allow"
      protocol                   = "Tcp"
      source_port_range          = "*"
      destination_port_range     = "22"
      source_address_prefix      = security_rule.value
      destination_address_prefix = "*"
    }
  }

  # Azure's default rules admit the whole VNet and the load balancer; runners need neither.
  security_rule {
    name                       = "deny-all-inbound"
    priority                   = 4000
    direction                  = "Inbound"
    access                     = "Deny"
    protocol                   = "*"
    source_port_range          = "*"
    destination_port_range     = "*"
    source_address_prefix      = "*"
    destination_address_prefix = "*"
  }
}

resource "azurerm_subnet_network_security_group_association" "runners" {
  subnet_id                 = azurerm_subnet.runners.id
  network_security_group_id = azurerm_network_security_group.runners.id
}

# One identity for the run's VMs: it may read the runner token and deallocate its own VM.
resource "azurerm_user_assigned_identity" "runner" {
  name                = "${local.name}-runner"
  location            = var.location
  resource_group_name = azurerm_resource_group.run.name
  tags                = local.tags
}

# A VM powered off from inside stays allocated and billed; only ARM can deallocate it. The
# hard lifetime and the end of the runner therefore deallocate through this role.
resource "azurerm_role_definition" "deallocate" {
  name        = "${local.name}-deallocate"
  scope       = azurerm_resource_group.run.id
  description = "cloudbench run ${var.run_id}: a runner VM may deallocate VMs of its run."

  permissions {
    actions = [
      "Microsoft.Compute/virtualMachines/read",
      "Microsoft.Compute/virtualMachines/deallocate/action",
    ]
  }

  assignable_scopes = [azurerm_resource_group.run.id]
}

resource "azurerm_role_assignment" "deallocate" {
  scope              = azurerm_resource_group.run.id
  role_definition_id = azurerm_role_definition.deallocate.role_definition_resource_id
  principal_id       = azurerm_user_assigned_identity.runner.principal_id
  principal_type     = "ServicePrincipal"
}

# Key Vault names are global and stay reserved while soft-deleted: a random suffix.
resource "random_string" "vault" {
  length  = 12
  upper   = false
  special = false
}

resource "azurerm_key_vault" "run" {
  #checkov:skip=CKV_AZURE_42:Purge protection would keep a per-run vault (and its name) for 7-90 days after the run; the vault holds one short-lived token.
  #checkov:skip=CKV_AZURE_110:Same as CKV_AZURE_42: purge protection is deliberately off so a run leaves nothing behind.
  #checkov:skip=CKV_AZURE_189:The master writes the secret from wherever it runs (an address not known in advance), so the public endpoint stays on; access policies admit only the deployer and the run's identity.
  #checkov:skip=CKV_AZURE_109:Same reason as CKV_AZURE_189: a deny-by-default firewall would lock out the master writing the secret; runners come through the subnet service endpoint.
  #checkov:skip=CKV2_AZURE_32:A private endpoint would need a private DNS zone per run; the subnet service endpoint keeps runner traffic on the Azure backbone.
  name                       = "cb-${random_string.vault.result}"
  location                   = var.location
  resource_group_name        = azurerm_resource_group.run.name
  tenant_id                  = data.azurerm_client_config.current.tenant_id
  sku_name                   = "standard"
  soft_delete_retention_days = 7
  purge_protection_enabled   = false
  tags                       = local.tags

  network_acls {
    # The master (terraform) writes from the internet; runners read via the service endpoint.
    default_action             = "Allow"
    bypass                     = "AzureServices"
    virtual_network_subnet_ids = [azurerm_subnet.runners.id]
  }

  # The deployer (this terraform) writes and later deletes the secret.
  access_policy {
    tenant_id          = data.azurerm_client_config.current.tenant_id
    object_id          = data.azurerm_client_config.current.object_id
    secret_permissions = ["Get", "Set", "Delete", "Purge", "Recover"]
  }

  # The runners only read.
  access_policy {
    tenant_id          = data.azurerm_client_config.current.tenant_id
    object_id          = azurerm_user_assigned_identity.runner.principal_id
    secret_permissions = ["Get"]
  }
}

# The runner token is read at boot with the VM's managed identity: custom data and tags are
# readable by anyone with reader access to the VM, the vault only by the run's identity.
resource "azurerm_key_vault_secret" "runner_token" {
  name         = "runner-token"
  value        = var.runner_token
  key_vault_id = azurerm_key_vault.run.id
  content_type = "text/plain"
  # Expires shortly after the last VM must be gone; fixed at creation.
  expiration_date = timeadd(timestamp(), "${var.max_lifetime_minutes + 120}m")
  tags            = local.tags

  lifecycle {
    ignore_changes = [expiration_date]
  }
}

resource "azurerm_network_interface" "runner" {
  for_each            = { for k, v in local.runners : k => v if var.launch_vms }
  name                = "${local.vm_name[each.key]}-nic"
  location            = var.location
  resource_group_name = azurerm_resource_group.run.name
  # Benchmarks do not measure the network; accelerated networking is not on every size.
  accelerated_networking_enabled = false
  tags                           = merge(local.tags, { Alias = each.value.alias })

  ip_configuration {
    name                          = "internal"
    subnet_id                     = azurerm_subnet.runners.id
    private_ip_address_allocation = "Dynamic"
  }
}

resource "azurerm_linux_virtual_machine" "runner" {
  for_each            = { for k, v in local.runners : k => v if var.launch_vms }
  name                = local.vm_name[each.key]
  computer_name       = "cb-${substr(sha1(each.key), 0, 12)}"
  location            = var.location
  resource_group_name = azurerm_resource_group.run.name
  size                = each.value.instance_type
  # NVMe-only sizes (the v6 families, e.g. Standard_D2pls_v6) refuse a SCSI disk controller;
  # the master passes what the Resource SKUs API lists (DiskControllerTypes).
  disk_controller_type            = each.value.disk_controller_type
  admin_username                  = "cloudbench"
  disable_password_authentication = true
  allow_extension_operations      = false
  network_interface_ids           = [azurerm_network_interface.runner[each.key].id]
  tags                            = merge(local.tags, { Alias = each.value.alias })
  # capacity "spot" (issue 27): evicted VMs are deleted (nothing billed after), capped at
  # max_price or, with -1, the pay-as-you-go price; the runner watches Scheduled Events.
  priority        = each.value.capacity == "spot" ? "Spot" : "Regular"
  eviction_policy = each.value.capacity == "spot" ? "Delete" : null
  max_bid_price   = each.value.capacity == "spot" ? coalesce(each.value.max_price, -1) : null

  custom_data = base64encode(templatefile("${path.module}/templates/runner-cloud-init.sh.tftpl", {
    max_lifetime_minutes = var.max_lifetime_minutes
    orchestrator_url     = trimsuffix(var.orchestrator_url, "/")
    tls_cert             = trimspace(var.orchestrator_tls_cert)
    tls_name             = "cloudbench-orchestrator" # the certificate's name (platform/tls.py)
    vault_uri            = azurerm_key_vault.run.vault_uri
    secret_name          = azurerm_key_vault_secret.runner_token.name
    identity_client_id   = azurerm_user_assigned_identity.runner.client_id
    run_id               = var.run_id
    alias                = each.value.alias
    debug                = var.debug ? "true" : "false"
    heartbeat_interval   = var.heartbeat_interval
    ruby_bench_sha256    = var.ruby_bench_sha256
    runner_requirements  = lookup(var.runner_requirements, each.value.architecture, "")
  }))

  admin_ssh_key {
    username   = "cloudbench"
    public_key = var.ssh_public_key
  }

  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.runner.id]
  }

  os_disk {
    caching = "ReadWrite"
    # Premium SSD where the size supports it (PremiumIO from the API), else Standard SSD.
    storage_account_type = each.value.premium_io ? "Premium_LRS" : "StandardSSD_LRS"
    disk_size_gb         = var.os_disk_size_gb
  }

  source_image_reference {
    publisher = "Canonical"
    offer     = "ubuntu-24_04-lts"
    sku       = local.image_sku[each.value.gen2 || each.value.architecture == "Arm64" ? each.value.architecture : "x64-gen1"]
    version   = "latest"
  }

  # Managed boot diagnostics: the serial log shows why a runner never reported.
  boot_diagnostics {}

  depends_on = [
    azurerm_role_assignment.deallocate,
    azurerm_subnet_nat_gateway_association.runners,
    azurerm_subnet_network_security_group_association.runners,
  ]
}
