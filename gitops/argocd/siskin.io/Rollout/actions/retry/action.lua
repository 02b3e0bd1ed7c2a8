-- After request.lua (render.sh joins them): the retry request.
return request(obj, "retry")
