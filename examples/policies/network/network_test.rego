package gatehouse.cookbook.network_test

import data.gatehouse.cookbook.network

req(route, ip, weekday, hour) := {
	"route": {"name": route},
	"request": {"remote_ip": ip},
	"time": {"weekday": weekday, "hour": hour},
}

test_hr_from_office_in_hours if {
	count(network.deny) == 0 with input as req("hr", "10.1.2.3", "Tuesday", 10)
	count(network.deny) == 0 with input as req("hr", "::1", "Friday", 8)
}

test_hr_from_outside if {
	network.deny == {"network.outside_office"} with input as req("hr", "203.0.113.9", "Tuesday", 10)
	network.deny == {"network.outside_office"} with input as req("hr", "", "Tuesday", 10)
}

test_hr_outside_hours if {
	network.deny == {"network.outside_office_hours"} with input as req("hr", "10.1.2.3", "Tuesday", 19)
	network.deny == {"network.outside_office_hours"} with input as req("hr", "10.1.2.3", "Tuesday", 7)
	network.deny == {"network.outside_office_hours"} with input as req("hr", "10.1.2.3", "Sunday", 10)
}

test_other_routes_unrestricted if {
	count(network.deny) == 0 with input as req("chat", "203.0.113.9", "Sunday", 3)
}
