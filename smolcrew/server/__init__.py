"""The service layer: `smolcrew serve`'s HTTP API, its Gradio chat UI and the pool of crews behind them.

`service.py` runs conversations on crews and keeps their events; `api.py` is the FastAPI app over it, `models.py`
its request and response bodies, `uploads.py` the files people send; `ui.py` and `ui_render.py` the chat UI. It
imports the runtime below it and never the command line.
"""
