"""Delete one kind of cloudbench resource each; callers run them in dependency order.

Deleters raise botocore errors; aws.execute_nuke records them and carries on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import ClientError

from cloudbench.nuke.aws_listing import Clients, Resource

logger = logging.getLogger(__name__)

S3_DELETE_BATCH = 1000  # the DeleteObjects maximum


def error_code(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def is_not_found(exc: Exception) -> bool:
    """True for "it is already gone" errors, which count as a successful delete."""
    code = error_code(exc)
    return code.endswith((".NotFound", "NotFound", "NoSuchEntity", "NoSuchBucket")) or code in {
        "ParameterNotFound",
        "InvalidAllocationID.NotFound",
    }


def terminate_instances(c: Clients, ids: Sequence[str], delay: float, attempts: int) -> None:
    """Terminate and wait until all are gone: their ENIs and addresses are freed only then."""
    if not ids:
        return
    c.ec2.terminate_instances(InstanceIds=list(ids))
    waiter = c.ec2.get_waiter("instance_terminated")
    waiter.wait(InstanceIds=list(ids), WaiterConfig={"Delay": delay, "MaxAttempts": attempts})


def delete_network_interface(c: Clients, r: Resource) -> None:
    eni = c.ec2.describe_network_interfaces(NetworkInterfaceIds=[r.id])["NetworkInterfaces"][0]
    association = eni.get("Association", {})
    if association.get("AssociationId"):
        c.ec2.disassociate_address(AssociationId=association["AssociationId"])
    attachment = eni.get("Attachment", {})
    if attachment.get("AttachmentId") and attachment.get("DeviceIndex", 0) != 0:
        c.ec2.detach_network_interface(AttachmentId=attachment["AttachmentId"], Force=True)
    c.ec2.delete_network_interface(NetworkInterfaceId=r.id)


def revoke_rule(c: Clients, r: Resource) -> None:
    """One ingress rule, as aws_listing.rule_id wrote it."""
    group, protocol, low, high, cidr = r.id.split(":")
    permission: dict[str, Any] = {"IpProtocol": protocol, "IpRanges": [{"CidrIp": cidr}]}
    if protocol != "-1":  # all traffic: no ports
        permission.update(FromPort=int(low), ToPort=int(high))
    c.ec2.revoke_security_group_ingress(GroupId=group, IpPermissions=[permission])


def release_elastic_ip(c: Clients, r: Resource) -> None:
    addresses = c.ec2.describe_addresses(AllocationIds=[r.id])["Addresses"]
    for address in addresses:
        if address.get("AssociationId"):
            c.ec2.disassociate_address(AssociationId=address["AssociationId"])
    c.ec2.release_address(AllocationId=r.id)


def revoke_security_group_rules(c: Clients, groups: Sequence[Resource]) -> None:
    """Drop every rule of our groups first: rules naming each other block deletion."""
    if not groups:
        return
    described = c.ec2.describe_security_groups(GroupIds=[g.id for g in groups])["SecurityGroups"]
    for group in described:
        if group.get("IpPermissions"):
            c.ec2.revoke_security_group_ingress(
                GroupId=group["GroupId"], IpPermissions=group["IpPermissions"]
            )
        if group.get("IpPermissionsEgress"):
            c.ec2.revoke_security_group_egress(
                GroupId=group["GroupId"], IpPermissions=group["IpPermissionsEgress"]
            )


def delete_security_group(c: Clients, r: Resource) -> None:
    c.ec2.delete_security_group(GroupId=r.id)


def delete_subnet(c: Clients, r: Resource) -> None:
    c.ec2.delete_subnet(SubnetId=r.id)


def delete_internet_gateway(c: Clients, r: Resource) -> None:
    igw = c.ec2.describe_internet_gateways(InternetGatewayIds=[r.id])["InternetGateways"][0]
    for attachment in igw.get("Attachments", []):
        c.ec2.detach_internet_gateway(InternetGatewayId=r.id, VpcId=attachment["VpcId"])
    c.ec2.delete_internet_gateway(InternetGatewayId=r.id)


def delete_route_table(c: Clients, r: Resource) -> None:
    table = c.ec2.describe_route_tables(RouteTableIds=[r.id])["RouteTables"][0]
    for association in table.get("Associations", []):
        if not association.get("Main") and association.get("RouteTableAssociationId"):
            c.ec2.disassociate_route_table(AssociationId=association["RouteTableAssociationId"])
    c.ec2.delete_route_table(RouteTableId=r.id)


def delete_vpc(c: Clients, r: Resource) -> None:
    c.ec2.delete_vpc(VpcId=r.id)


def delete_key_pair(c: Clients, r: Resource) -> None:
    # By name: every EC2 implementation honours it, not all honour KeyPairId.
    if r.name:
        c.ec2.delete_key_pair(KeyName=r.name)
    else:
        c.ec2.delete_key_pair(KeyPairId=r.id)


def _delete_batches(c: Clients, bucket: str, objects: list[dict[str, str]]) -> None:
    for start in range(0, len(objects), S3_DELETE_BATCH):
        batch = objects[start : start + S3_DELETE_BATCH]
        response = c.s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
        if response.get("Errors"):
            first = response["Errors"][0]
            raise RuntimeError(f"{len(response['Errors'])} objects not deleted: {first}")


def empty_bucket(c: Clients, bucket: str) -> None:
    """Delete every object version and delete marker, then any remaining current objects."""
    versions: list[dict[str, str]] = []
    for page in c.s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
            versions.append({"Key": item["Key"], "VersionId": item["VersionId"]})
    _delete_batches(c, bucket, versions)
    current: list[dict[str, str]] = []
    for page in c.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        current.extend({"Key": item["Key"]} for item in page.get("Contents", []))
    _delete_batches(c, bucket, current)


def delete_bucket(c: Clients, r: Resource) -> None:
    empty_bucket(c, r.id)
    c.s3.delete_bucket(Bucket=r.id)


def delete_ssm_parameter(c: Clients, r: Resource) -> None:
    c.ssm.delete_parameter(Name=r.id)


def delete_instance_profile(c: Clients, r: Resource) -> None:
    profile = c.iam.get_instance_profile(InstanceProfileName=r.id)["InstanceProfile"]
    for role in profile.get("Roles", []):
        c.iam.remove_role_from_instance_profile(InstanceProfileName=r.id, RoleName=role["RoleName"])
    c.iam.delete_instance_profile(InstanceProfileName=r.id)


def _role_items(c: Clients, operation: str, key: str, role: str) -> list[Any]:
    items: list[Any] = []
    for page in c.iam.get_paginator(operation).paginate(RoleName=role):
        items.extend(page.get(key, []))
    return items


def delete_iam_role(c: Clients, r: Resource) -> None:
    for name in _role_items(c, "list_role_policies", "PolicyNames", r.id):
        c.iam.delete_role_policy(RoleName=r.id, PolicyName=name)
    for policy in _role_items(c, "list_attached_role_policies", "AttachedPolicies", r.id):
        c.iam.detach_role_policy(RoleName=r.id, PolicyArn=policy["PolicyArn"])
    for profile in _role_items(c, "list_instance_profiles_for_role", "InstanceProfiles", r.id):
        c.iam.remove_role_from_instance_profile(
            InstanceProfileName=profile["InstanceProfileName"], RoleName=r.id
        )
    c.iam.delete_role(RoleName=r.id)
