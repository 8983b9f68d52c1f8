"""HTTP adapters: the robot's control plane (``control``) and the checks every endpoint shares (``security``).

The robot (``autotrader.live``) never imports a web framework: the CLI builds ``ControlServer``
around the robot's metrics, kill switch and status, and starts and stops it.
"""
