# Who the caller is, from the IdP's claims (oidc.claims maps the groups and
# roles claims into input.user.groups / input.user.roles). Group names are
# compared case-insensitively, as most IdPs treat them.
package gatehouse.cookbook.identity

signed_in if input.user.sub != ""

# groups: every group and role of the user, lower-cased. A complete rule
# (not "groups contains ...") so that OPA computes it once per request.
groups := {lower(g) | some g in object.get(input, ["user", "groups"], [])} | {lower(r) | some r in object.get(input, ["user", "roles"], [])}

# admin: member of one of data.identity.admins.
admin if {
	signed_in
	some g in data.identity.admins
	lower(g) in groups
}
