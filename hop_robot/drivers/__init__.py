"""Robot drivers behind one protocol (``base.Driver``: connect / observe / act /
stop / disconnect, a context manager): ``sim.SimRobot`` (MuJoCo), ``xarm.XArmDriver``
(xArm7, xarm-python-sdk), ``allegro.AllegroHand`` (Allegro v4, python-can) and
``composite.ArmHandRobot`` (the two as one 23-joint robot). The hardware SDKs
are imported only when a driver connects."""
