#!/usr/bin/env bats
# fetch-weights: its front door (the downloads themselves run in make weights, with network).
load helpers
setup() { setup_tools; }

@test "fetch-weights --help names every option, what it writes and an example" {
    help_names_options fetch-weights tools/fetch-weights
    [[ "$output" == *"pt_inception-2015-12-05-6726825d.pth"* ]]
}

@test "fetch-weights: a bad option or two folders are usage errors" {
    run -2 --separate-stderr fetch-weights --bogus
    [[ "$stderr" == "usage: fetch-weights "* ]]
    run -2 --separate-stderr fetch-weights a b
    [[ "$stderr" == "usage: fetch-weights "* ]]
}
