terraform {
  required_version = ">= 1.5.0, < 2.0.0"

  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = "~> 4.10"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }
}

provider "azurerm" {
  subscription_id = var.subscription_id
  # The run's resource group holds only what this stack created; the master also sweeps
  # by tag, so a failed destroy must not be blocked by a stray resource inside it.
  resource_provider_registrations = "none"
  # Exactly the resource providers this stack uses, registered on a fresh subscription
  # (which otherwise fails with "API version ... was not found for 'Microsoft.X'"). Without
  # the right to register, `az provider register --namespace <each>` once, as an owner.
  resource_providers_to_register = [
    "Microsoft.Compute",
    "Microsoft.KeyVault",
    "Microsoft.ManagedIdentity",
    "Microsoft.Network",
  ]

  features {
    resource_group {
      prevent_deletion_if_contains_resources = false
    }
    key_vault {
      # The vault lives as long as one run; purging frees its name at once.
      purge_soft_delete_on_destroy = true
    }
  }
}
