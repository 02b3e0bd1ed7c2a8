-- After request.lua (render.sh joins them): the promote request.
return request(obj, "promote")
