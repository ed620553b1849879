# Office network and office hours, from data.network: the routes listed in
# office_only_routes are reachable only from office_cidrs, and only during
# office_hours (local time in the configured anomaly.timezone).
package gatehouse.cookbook.network

in_office if {
	input.request.remote_ip != ""
	some cidr in data.network.office_cidrs
	net.cidr_contains(cidr, input.request.remote_ip)
}

office_hours if {
	input.time.weekday in data.network.office_hours.days
	input.time.hour >= data.network.office_hours.start
	input.time.hour < data.network.office_hours.end
}

office_only if input.route.name in data.network.office_only_routes

deny contains "network.outside_office" if {
	office_only
	not in_office
}

deny contains "network.outside_office_hours" if {
	office_only
	not office_hours
}
