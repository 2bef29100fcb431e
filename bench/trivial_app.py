"""The trivial Falcon + gunicorn baseline for single-point inserts: POST /insert reads the body and answers 201.

What a node could at best reach with the same server stack, workers and threads; the single-insert target is a
share of it, measured in the same run (bench/spread.py).
"""

import falcon


class InsertResource:
    def on_post(self, req, resp):
        req.bounded_stream.read()
        resp.status = falcon.HTTP_201
        resp.media = {"written": 1}


app = falcon.App()
app.add_route("/insert", InsertResource())
