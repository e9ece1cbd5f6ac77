
(function(){
Array.prototype.forEach.call(document.querySelectorAll('input[data-view-filter]'),function(q){
var t=document.getElementById(q.getAttribute('data-view-filter'));if(!t)return;
var rows=Array.prototype.slice.call(t.tBodies[0].rows);
q.addEventListener('input',function(){var s=q.value.toLowerCase();
rows.forEach(function(r){r.hidden=!!s&&r.textContent.toLowerCase().indexOf(s)<0;});});});
})();
