# Policy of the nginx forward-auth test: any signed-in user may use the
# legacy app, except its /finance folder, which is for the finance group.
package gatehouse.authz

default allow := false

allow if input.user.sub != ""

deny contains "legacy.finance_only" if {
	startswith(input.request.path, "/finance")
	not "finance" in object.get(input.user, "groups", [])
}
