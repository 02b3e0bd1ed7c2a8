-- After request.lua (render.sh joins them): the abort request.
return request(obj, "abort")
