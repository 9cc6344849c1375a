"""Closes an X window as a window manager's close button does: a WM_DELETE_WINDOW message.

The end-to-end test runs under Xvfb without a window manager, and neither xdotool nor
wmctrl can send this there. Usage: close_window.py WINDOW_ID
"""

import sys

from Xlib import X, display
from Xlib.protocol import event


def main():
    screen = display.Display()
    window = screen.create_resource_object("window", int(sys.argv[1], 0))
    message = event.ClientMessage(
        window=window,
        client_type=screen.intern_atom("WM_PROTOCOLS"),
        data=(32, [screen.intern_atom("WM_DELETE_WINDOW"), X.CurrentTime, 0, 0, 0]),
    )
    window.send_event(message, event_mask=X.NoEventMask)
    screen.flush()


if __name__ == "__main__":
    main()
