/*
 * openai.h: the OpenAI-compatible routes of rosimd, answered in OpenAI's
 * conventions so that OpenAI clients (the official libraries, LangChain,
 * gateways, chat UIs) work unchanged:
 *
 *   POST /v1/embeddings    {"input": str | [str], "model"?, "encoding_format"?,
 *                           "dimensions"?, "user"?}
 *   GET  /v1/models        {"object":"list","data":[{"id","object":"model",
 *                           "created","owned_by"}]}
 *   GET  /v1/models/{model} the model, or 404
 *
 * Errors on these routes are {"error":{"message","type","param","code"}}:
 * invalid requests are 400 (rosimd's 413, 415 and 422 become 400, which
 * every OpenAI client stops on at once instead of retrying), type
 * invalid_request_error, param the field at fault (null when none);
 * 401 authentication_error; 429 rate_limit_error and 503 server_error,
 * both with Retry-After.  code is rosimd's error code.  The errors the
 * route table answers on these routes (routes.c: 405, 503) and those
 * http.c makes before (401, 413, bad framing) take this shape too.
 */
#ifndef ROSIM_OPENAI_H
#define ROSIM_OPENAI_H

#include "api.h"
#include "routes.h"

/* The handlers of the three routes (rows of routes.c). */
route_fn openai_embeddings, openai_models, openai_model;

/* Give rp, a native error reply {"error":{"code","message"}}, OpenAI's
 * shape and status, with param (NULL: null) the field at fault.  Replies
 * under 400 are left alone. */
void openai_error(struct api_reply *rp, const char *param);

/* For errors made before the API runs (http.c): openai_error() when path
 * (raw, as received) is a route the table marks ROUTE_OPENAI, else nothing. */
void openai_error_for_path(const char *path, struct api_reply *rp);

#endif
