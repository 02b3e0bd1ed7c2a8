-- After request.lua (render.sh joins them): the resume request.
return request(obj, "resume")
