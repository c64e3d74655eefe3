#!/usr/bin/python
"""Names of the packages installed on a host (dpkg or rpm), as a plain result."""

from __future__ import annotations

DOCUMENTATION = r"""
module: installed_packages
short_description: Names of the OS packages installed on a host
description:
  - Returns the names of the installed packages (dpkg on Debian, rpm on EL) as a
    plain result, to be registered, rather than as facts as
    M(ansible.builtin.package_facts) does. Facts are copied for every task and host
    of a play; a register is not, and the roles only ask whether a name is there.
  - Changes nothing, so it also runs in check mode.
options: {}
author: panda.facility maintainers
"""

EXAMPLES = r"""
- name: Read the installed packages
  panda.facility.installed_packages:
  register: facility_installed_packages
"""

RETURN = r"""
names:
  description: Names of the installed packages, sorted.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402 (after the docs, as modules are)

# dpkg's status abbreviation: the second letter is the current state, i = installed.
DPKG = ["dpkg-query", "-W", "-f=${db:Status-Abbrev} ${Package}\\n"]
RPM = ["rpm", "-qa", "--qf", "%{NAME}\\n"]


def dpkg_names(out: str) -> list:
    names = []
    for line in out.splitlines():
        status, _, name = line.partition(" ")
        if len(status) >= 2 and status[1] == "i" and name.strip():
            names.append(name.strip())
    return names


def main() -> None:
    module = AnsibleModule(argument_spec={}, supports_check_mode=True)
    if module.get_bin_path("dpkg-query"):
        rc, out, err = module.run_command(DPKG)
        names = dpkg_names(out)
    elif module.get_bin_path("rpm"):
        rc, out, err = module.run_command(RPM)
        names = [line.strip() for line in out.splitlines() if line.strip()]
    else:
        module.fail_json(msg="neither dpkg-query nor rpm is on this host")
    if rc != 0:
        module.fail_json(msg="listing the installed packages failed", rc=rc, stderr=err)
    module.exit_json(changed=False, names=sorted(set(names)))


if __name__ == "__main__":
    main()
