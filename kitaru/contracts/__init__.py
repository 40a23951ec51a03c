"""Kitaru's contracts: the types and protocols every layer agrees on.

The bottom layer: it imports nothing else from Kitaru, and ``kitaru_server`` imports
from ``kitaru`` only this package.
"""
