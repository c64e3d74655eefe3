"""The lab's connection: community.docker.docker_api, with every command's standard input
attached (and closed at once when Ansible has nothing to send)."""

from __future__ import annotations

from ansible_collections.community.docker.plugins.connection.docker_api import (
    Connection as DockerApiConnection,
)

DOCUMENTATION = r"""
name: lab_docker
short_description: Run the lab's tasks in its containers over the Docker API
description:
  - The connection of inventories/lab. It is P(community.docker.docker_api#connection)
    except for one thing, every command runs with its standard input attached; when
    Ansible sends no input the input is closed right away.
  - Under the load of a site.yml run, Docker sometimes returns the output of a command
    run without standard input as empty although the command printed it (Ansible then
    fails to read its remote temporary directory). In the lab, 5 of 3400 such commands
    lost their output while files were copied into the same containers; 0 of 3400 with
    standard input attached.
  - Lab only; the collection does not ship it. A real site connects over SSH.
author: panda.facility
extends_documentation_fragment:
  - community.docker.docker.api_documentation
  - community.docker.docker.var_names
options:
  remote_user:
    type: str
    description: The user commands run as in the container.
    vars:
      - name: ansible_user
      - name: ansible_docker_user
    keyword:
      - name: remote_user
  remote_addr:
    type: str
    description: The container's name.
    default: inventory_hostname
    vars:
      - name: inventory_hostname
      - name: ansible_host
      - name: ansible_docker_host
  container_timeout:
    type: integer
    default: 10
    description: Seconds to wait for a command's output once it started.
    vars:
      - name: ansible_docker_timeout
  extra_env:
    type: dict
    description: More environment variables for the commands.
    vars:
      - name: ansible_docker_extra_env
  working_dir:
    type: string
    description: The directory the commands run in.
    vars:
      - name: ansible_docker_working_dir
  privileged:
    type: boolean
    default: false
    description: Whether commands run with extended privileges.
    vars:
      - name: ansible_docker_privileged
"""


class Connection(DockerApiConnection):
    transport = "lab_docker"

    def exec_command(self, cmd, in_data=None, sudoable=False):  # noqa: ANN001, ANN201
        return super().exec_command(
            cmd, in_data=b"" if in_data is None else in_data, sudoable=sudoable
        )
