"""The mailbridge Pulumi program: this stack's domain spec, deployed."""

from components.program import run

run()
