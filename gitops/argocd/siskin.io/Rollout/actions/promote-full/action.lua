-- After request.lua (render.sh joins them): the promote-full request.
return request(obj, "promote-full")
