# The anomaly detector's verdicts: an active block refuses every request.
package gatehouse.cookbook.risk

deny contains "risk.blocked" if input.risk.blocked
