# Copyright: panda.facility contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Mitogen's linear strategy, without its CPU pinning on controllers of 2 or 3 CPUs."""

from __future__ import annotations

import multiprocessing

import ansible_mitogen.affinity
import ansible_mitogen.loaders
import ansible_mitogen.strategy

DOCUMENTATION = r"""
name: mitogen_linear
short_description: Mitogen's linear strategy, without CPU pinning on small controllers
description:
  - Ansible's linear strategy accelerated by Mitogen (PyPI C(mitogen), which must be
    installed beside ansible-core): one long-lived Python per host instead of a new
    interpreter for every task.
  - Mitogen pins its processes to CPUs. On a controller with fewer than 4 CPUs its
    policy puts the playbook process and every task's worker on one CPU and leaves the
    other to the connection multiplexer, so the workers queue behind each other. This
    strategy leaves such a controller's scheduler free; on 4 CPUs or more Mitogen's
    policy stands as it is.
  - "Use it with C(ANSIBLE_STRATEGY=panda.facility.mitogen_linear) or
    C(strategy: panda.facility.mitogen_linear) in a play."
author: panda.facility contributors
"""

if multiprocessing.cpu_count() < 4:
    # Workers and the top-level process would share one CPU (affinity.FixedPolicy).
    ansible_mitogen.affinity.policy = ansible_mitogen.affinity.Policy()

_Linear = ansible_mitogen.loaders.strategy_loader.get("linear", class_only=True)


class StrategyModule(ansible_mitogen.strategy.StrategyMixin, _Linear):  # type: ignore[misc,valid-type]
    """Mitogen's StrategyMixin over Ansible's linear strategy."""
