# Gatehouse policy cookbook: the entry point the engine evaluates.
#
# Each folder is one concern in its own package (gatehouse.cookbook.*), with
# its own tests; this file only combines them. A request is allowed iff
# allow is true, deny is empty and (require_mfa => input.session.mfa); when
# only MFA is missing Gatehouse asks the IdP for a step-up.
package gatehouse.authz

import data.gatehouse.cookbook.breakglass
import data.gatehouse.cookbook.downloads
import data.gatehouse.cookbook.network
import data.gatehouse.cookbook.paths
import data.gatehouse.cookbook.risk
import data.gatehouse.cookbook.roles

default allow := false

# Public routes need no login; deny rules below still apply.
allow if input.route.public

allow if roles.allow

allow if breakglass.allow

# Every concern's reasons, in one complete rule (computed once).
deny := ((((risk.deny | paths.deny) | downloads.deny) | network.deny) | breakglass.deny)

default require_mfa := false

require_mfa if paths.require_mfa

require_mfa if downloads.require_mfa

require_mfa if breakglass.require_mfa
