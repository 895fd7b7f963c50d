# ailab.cluster tenants (hub.extraConfig snippet of the role ailab.cluster.jupyterhub).
# A user sees the profiles of the tenants they belong to (user name, JupyterHub group named after the
# tenant, or an identity-provider group the tenant lists), and their server starts in that tenant's
# namespace, so the tenant's ResourceQuota, LimitRange and NetworkPolicy apply to it. A user who
# belongs to no tenant gets no server. custom.ailab is written by the role from ailab_tenants.
import copy

from tornado import web
from z2jh import get_config


def ailab_user_tenants(user, tenants):
    """The tenants a JupyterHub user belongs to, in the order of custom.ailab.tenants."""
    groups = {group.name for group in user.groups}
    return [tenant for tenant in tenants
            if user.name in tenant["users"] or tenant["name"] in groups or groups & set(tenant["groups"])]


def ailab_profile_list(spawner):
    """KubeSpawner.profile_list: the profiles of the user's tenants, each starting in the tenant's namespace."""
    ailab = get_config("custom.ailab", {})
    profiles = {profile["slug"]: profile for profile in get_config("singleuser.profileList", [])}
    tenants = ailab_user_tenants(spawner.user, ailab.get("tenants", []))
    result = []
    for tenant in tenants:
        for slug in tenant["profiles"]:
            profile = copy.deepcopy(profiles[slug])
            profile.pop("default", None)
            profile["slug"] = "%s-%s" % (tenant["name"], slug)
            profile.setdefault("kubespawner_override", {})["namespace"] = tenant["namespace"]
            if len(tenants) > 1:
                profile["display_name"] = "%s: %s" % (tenant["name"], profile["display_name"])
            result.append(profile)
    if not result:
        # An empty list would start the server with the hub's defaults, outside every tenant quota.
        raise web.HTTPError(403, ailab.get("no_tenant_message", "You belong to no tenant of this lab."))
    result[0]["default"] = True
    return result


# c is the config object of z2jh's jupyterhub_config.py, which runs this snippet.
c.KubeSpawner.profile_list = ailab_profile_list  # noqa: F821  # pylint: disable=undefined-variable
