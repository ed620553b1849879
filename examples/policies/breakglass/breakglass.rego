# Break-glass: members of the break-glass group may use any app in an
# emergency, but only with MFA and only when they say why, in the
# X-Break-Glass-Reason header (at least 10 characters). Every such request is
# in the audit log with its reason.
package gatehouse.cookbook.breakglass

import data.gatehouse.cookbook.identity
import data.gatehouse.cookbook.roles

member if "break-glass" in identity.groups

reason := trim_space(object.get(input.request.headers, "x-break-glass-reason", ""))

has_reason if count(reason) >= 10

allow if {
	member
	has_reason
}

require_mfa if member

# Relying on break-glass without a reason is refused with a clear reason id;
# members whose own roles allow the app need no reason.
deny contains "breakglass.reason_missing" if {
	member
	not has_reason
	not roles.allow
}
